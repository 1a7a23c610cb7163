"""The offline recognizer's language model: what callers say to this assistant.

Pocketsphinx's stock English model mishears short commands badly; a small n-gram model
built from the phrases the intent model understands, plus the caller's own words (todo
titles, team and member names), cuts the error rate several-fold. Building one takes
milliseconds, so each distinct vocabulary gets its own model, cached on disk and in memory
under a digest of its sentences.

The model comes with a pronunciation dictionary holding only its own words: decoders
load that in milliseconds, against seconds for the full 135,000-word dictionary. Words the
full dictionary lacks cannot be pronounced (there is no letter-to-sound model), so they
are left out of the model and logged once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TextIO

import pocketsphinx
from pocketsphinx.lm import ArpaBoLM

from convonet.engines.stt.base import Vocabulary

log = logging.getLogger(__name__)

# One line per sentence; the intent model (convonet/engines/llm/intent_model.py) understands
# each of them. Lower case, numbers as words, as a recognizer writes them.
COMMAND_PHRASES: tuple[str, ...] = (
    # todos
    "create a todo to buy milk",
    "add a todo to call the plumber",
    "add a new task to send the invoice",
    "add a high priority todo to finish the report",
    "create an urgent task to pay the electric bill due friday",
    "add a todo to book the flights due tomorrow",
    "add buy eggs to my list",
    "put pick up the kids on my todo list",
    "add clean the garage to my shopping list",
    "i need to renew my passport",
    "what's on my list",
    "what's on my todo list",
    "read my todo list",
    "show me my todos",
    "list my tasks",
    "what are my todos for today",
    "what's due tomorrow",
    "what's overdue",
    "show my completed todos",
    "list my high priority tasks",
    "what tasks are due this week",
    "mark buy milk as done",
    "mark the todo call the plumber as complete",
    "i finished the report",
    "complete todo number three",
    "check off buy eggs",
    "delete the todo buy milk",
    "delete todo number two",
    "remove buy eggs from my list",
    "change the priority of buy milk to high",
    "set the due date of the report to friday",
    "rename buy milk to buy oat milk",
    # reminders
    "remind me to call mom tomorrow at ten",
    "remind me to take my medicine at eight pm",
    "remind me to call the dentist on monday at nine am",
    "remind me to check the oven in twenty minutes",
    "remind me about the meeting in an hour",
    "set a reminder to water the plants tomorrow morning",
    "create a reminder to pick up the laundry at five thirty pm",
    "what are my reminders",
    "list my reminders for today",
    "show my reminders for tomorrow",
    "delete the reminder to call mom",
    "cancel my reminder about the dentist",
    "move the reminder to call mom to friday at five pm",
    # calendar
    "schedule a meeting with the team tomorrow at two pm",
    "schedule lunch with alice on friday at noon",
    "book a dentist appointment on monday at nine thirty am",
    "add a meeting to my calendar on thursday at three pm",
    "schedule a call with the client next tuesday at eleven am for thirty minutes",
    "schedule a doctor appointment on december fifth at four pm for an hour",
    "what's on my calendar today",
    "what's on my calendar tomorrow",
    "what do i have this week",
    "what's on my schedule for friday",
    "what meetings do i have next week",
    "am i free on thursday afternoon",
    "move the team meeting to friday at three pm",
    "reschedule the dentist appointment to next monday at ten",
    "cancel the meeting with bob",
    "delete the dentist appointment from my calendar",
    "rename the team meeting to weekly sync",
    "change the location of the team meeting to room four",
    # teams
    "create a team called marketing",
    "create a new team called design",
    "what teams am i in",
    "list my teams",
    "who is on the sales team",
    "who's in the demo team",
    "list the members of the marketing team",
    "add bob to the marketing team",
    "add alice to the demo team as an admin",
    "remove carol from the design team",
    "make bob an admin of the demo team",
    "find a user named alice",
    "add a team todo for the marketing team to review the budget",
    "assign review the slides to bob in the marketing team",
    # departments and people
    "what departments are there",
    "list the departments",
    "transfer me to an agent",
    "transfer me to sales",
    "transfer me to support",
    "transfer me to billing",
    "transfer me to the general department",
    "connect me to a real person",
    "i want to talk to a person",
    "can i speak to someone in billing",
    "put me through to customer support",
    "i need to speak with a human",
    "get me a representative",
    "agent",
    "operator",
    # small talk
    "hello",
    "hi there",
    "good morning",
    "good afternoon",
    "thanks",
    "thank you very much",
    "goodbye",
    "bye",
    "that's all for now",
    "no thanks",
    "yes",
    "no",
    "yes please",
    "okay",
    "help",
    "what can you do",
    # numbers, days and times said on their own
    "one two three four five six seven eight nine ten",
    "eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty",
    "thirty forty fifty",
    "monday tuesday wednesday thursday friday saturday sunday",
    "today tomorrow tonight this weekend next week",
    "january february march april may june july august september october november december",
    "at three pm",
    "at ten thirty am",
    "tomorrow at ten",
    "next friday at noon",
    "at seven o'clock in the evening",
    "at half past two",
    "in two days",
)

# A caller's own phrase is also learnt in the commands that name it, so "mark <title> as
# done" is as likely as "mark buy milk as done".
_CARRIERS = (
    "{}",
    "add {} to my list",
    "mark {} as done",
    "delete {}",
    "remind me to {} tomorrow at ten",
    "add {} to the team",
)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_MEMORY_LIMIT = 64

_lock = threading.Lock()
_built: OrderedDict[Path, None] = OrderedDict()  # models known to be on disk, newest last
_reported_unknown: set[str] = set()


def dictionary_path(lm_path: Path) -> Path:
    """The pronunciation dictionary written next to a model by `build_language_model`."""
    return lm_path.with_suffix(".dict")


def build_language_model(vocabulary: Vocabulary, cache_dir: Path) -> Path:
    """The ARPA model for the command phrases plus `vocabulary`, built only if not cached.

    Models are named by a digest of their sentences. Thread-safe; files are written
    atomically, so processes sharing `cache_dir` never read half a model. Models already
    seen by this process are not even looked for on disk.
    """
    sentences = _sentences(vocabulary)
    recipe = f"discount={DISCOUNT_MASS}\n" + "\n".join(sentences)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:24]
    lm_path = cache_dir / f"{digest}.lm"
    with _lock:
        if lm_path in _built:
            _built.move_to_end(lm_path)
            return lm_path
        if not lm_path.exists():
            _write_model(sentences, lm_path)
        _built[lm_path] = None
        while len(_built) > _MEMORY_LIMIT:
            _built.popitem(last=False)
    return lm_path


def _sentences(vocabulary: Vocabulary) -> list[str]:
    """The command phrases, then each of the caller's phrases in every carrier; only words
    with a known pronunciation."""
    known = _pronunciations()
    own: dict[str, None] = {}
    for phrase in vocabulary.phrases:
        words = _WORD.findall(phrase.lower().replace("\u2019", "'"))
        _report_unknown(w for w in words if w not in known)
        spoken = " ".join(w for w in words if w in known)
        if spoken:
            own[spoken] = None
    return [*COMMAND_PHRASES, *(carrier.format(phrase) for phrase in own for carrier in _CARRIERS)]


# Probability left for unseen word pairs (ArpaBoLM's default is 0.5). The phrases are the
# domain, so little is held back: "buy milk" must beat an acoustically close "buy real".
DISCOUNT_MASS = 0.2


def _write_model(sentences: list[str], lm_path: Path) -> None:
    known = _pronunciations()
    model = ArpaBoLM(text="\n".join(sentences), add_start=True, discount_mass=DISCOUNT_MASS)
    model.compute()
    words = sorted({word for sentence in sentences for word in sentence.split()})
    lm_path.parent.mkdir(parents=True, exist_ok=True)
    # The dictionary first: a model file on disk means both are complete.
    with _replacing(dictionary_path(lm_path)) as handle:
        handle.writelines(known[word] for word in words)
    with _replacing(lm_path) as handle:
        model.write(handle)


@contextmanager
def _replacing(path: Path) -> Iterator[TextIO]:
    """A text file that replaces `path` only once it has been written completely."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _report_unknown(words: Iterable[str]) -> None:
    new = sorted(set(words) - _reported_unknown)
    if new:
        _reported_unknown.update(new)
        log.info("left out of the speech model, no pronunciation known: %s", ", ".join(new))


@cache
def _pronunciations() -> dict[str, str]:
    """The stock English dictionary's lines for each word (alternatives included), about
    20 MB; loaded once per process in a third of a second."""
    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    lines: dict[str, str] = {}
    with path.open(encoding="utf-8") as source:
        for line in source:
            word = line.split(" ", 1)[0].split("(", 1)[0]
            lines[word] = lines.get(word, "") + line.rstrip("\n") + "\n"
    return lines
