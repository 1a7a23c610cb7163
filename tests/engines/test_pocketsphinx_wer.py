"""Offline recognition of the assistant's commands, spoken by eSpeak in two voices.

Scored by word error rate against the sentence spoken; `pytest -s` prints the figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from convonet.agent.context import TurnContext
from convonet.agent.tool_specs import TOOL_SPECS
from convonet.engines.llm.intent_model import NOT_UNDERSTOOD, IntentModel
from convonet.engines.stt.base import SttError, Vocabulary
from convonet.engines.stt.domain_lm import (
    COMMAND_PHRASES,
    build_language_model,
    dictionary_path,
)
from convonet.engines.stt.pocketsphinx import PocketsphinxRecognizer
from convonet.speech.audio import FRAME_BYTES, frames, silence
from tests.speech_samples import speak, word_error_rate

VOICES = ("en-us", "en-gb")
VOCABULARY = Vocabulary(("buy milk", "Bob Smith", "Marketing", "call mom"))
# Thirteen are the domain model's own sentences, seven new combinations of its words.
COMMANDS = (
    "create a todo to buy milk",
    "what's on my list",
    "remind me to call mom tomorrow at ten",
    "transfer me to an agent",
    "what's on my calendar tomorrow",
    "mark buy milk as done",
    "add bob smith to the marketing team",
    "schedule a meeting with bob smith on friday at three pm",
    "delete the todo buy milk",
    "list my reminders for tomorrow",
    "who is on the marketing team",
    "transfer me to billing",
    "what teams am i in",
    "cancel the meeting with bob smith",
    "remind me to take my medicine at nine pm",
    "what departments are there",
    "add a high priority todo to call the plumber",
    "what do i have this week",
    "thank you very much",
    "goodbye",
)


@dataclass
class Transcript:
    text: str
    interims: list[str]


@pytest.fixture(scope="module")
async def recognizer(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[PocketsphinxRecognizer]:
    engine = PocketsphinxRecognizer(tmp_path_factory.mktemp("speech"))
    yield engine
    await engine.aclose()


def _utterance(text: str, voice: str = "en-us") -> bytes:
    return silence(300) + speak(text, voice) + silence(800)


async def _transcribe(
    recognizer: PocketsphinxRecognizer, vocabulary: Vocabulary, pcm: bytes
) -> Transcript:
    """Feeds 20 ms frames as a browser would."""
    stream = await recognizer.open(vocabulary)
    interims: list[str] = []
    try:
        for frame in frames(pcm, FRAME_BYTES):
            interim = await stream.feed(frame)
            if interim is not None:
                interims.append(interim)
        text = await stream.finish()
    finally:
        await stream.aclose()
    return Transcript(text, interims)


def test_every_command_is_understood_by_the_intent_model() -> None:
    context = TurnContext(
        conversation_id="c",
        workflow_id="w",
        turn=1,
        user_id=1,
        user_name="Ann Lee",
        timezone="UTC",
        now_iso="2026-11-25T10:00:00+00:00",
    )
    for command in COMMANDS:
        reply = IntentModel().answer(command, TOOL_SPECS, context)
        assert reply.tool_calls or reply.content != NOT_UNDERSTOOD, command


async def test_word_error_rate_of_commands(recognizer: PocketsphinxRecognizer) -> None:
    errors = words = 0.0
    for voice in VOICES:
        voice_errors = voice_words = 0.0
        for command in COMMANDS:
            transcript = await _transcribe(recognizer, VOCABULARY, _utterance(command, voice))
            size = len(command.split())
            voice_errors += word_error_rate(command, transcript.text) * size
            voice_words += size
            if transcript.text != command:
                print(f"  {voice}: {command!r} -> {transcript.text!r}")
            # Interim text comes while speaking, and only when it changed.
            assert all(a != b for a, b in pairwise(transcript.interims))
        print(
            f"{voice}: word error rate {voice_errors / voice_words:.1%} ({voice_words:.0f} words)"
        )
        errors, words = errors + voice_errors, words + voice_words
    # What decoding costs is measured by `convonet bench load` (CPU per process), not here.
    print(f"overall: word error rate {errors / words:.1%}")
    assert errors / words < 0.15


async def test_interim_text_arrives_before_the_end(recognizer: PocketsphinxRecognizer) -> None:
    transcript = await _transcribe(
        recognizer, VOCABULARY, _utterance("schedule a meeting with the team tomorrow at two pm")
    )
    assert transcript.interims and transcript.interims[-1] != ""
    assert transcript.text == "schedule a meeting with the team tomorrow at two pm"


async def test_callers_own_words_are_heard_once_in_the_vocabulary(
    recognizer: PocketsphinxRecognizer,
) -> None:
    pcm = _utterance("mark walk the dog as done")
    before = await _transcribe(recognizer, VOCABULARY, pcm)
    assert "walk" not in before.text.split() and "dog" not in before.text.split()

    grown = Vocabulary((*VOCABULARY.phrases, "Walk the dog", "Kowalski"))
    after = await _transcribe(recognizer, grown, pcm)
    assert after.text == "mark walk the dog as done"
    name = await _transcribe(recognizer, grown, _utterance("add kowalski to the marketing team"))
    assert name.text == "add kowalski to the marketing team"

    old_model = build_language_model(VOCABULARY, recognizer.cache_dir)
    new_model = build_language_model(grown, recognizer.cache_dir)
    assert new_model != old_model
    assert "walk" not in dictionary_path(old_model).read_text().split()
    assert "walk" in dictionary_path(new_model).read_text().split()


def test_language_model_is_built_once_per_vocabulary(tmp_path: Path) -> None:
    first = build_language_model(VOCABULARY, tmp_path)
    written = first.stat().st_mtime_ns
    again = build_language_model(Vocabulary(tuple(VOCABULARY.phrases)), tmp_path)
    assert again == first and first.stat().st_mtime_ns == written
    # Same words in another spelling make the same model.
    assert (
        build_language_model(
            Vocabulary(("BUY MILK", "bob  smith", "marketing", "Call Mom")), tmp_path
        )
        == first
    )
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".dict", ".lm"]


def test_every_command_word_has_a_pronunciation(tmp_path: Path) -> None:
    model = build_language_model(Vocabulary(), tmp_path)
    pronounced = {line.split()[0] for line in dictionary_path(model).read_text().splitlines()}
    assert {word for phrase in COMMAND_PHRASES for word in phrase.split()} <= pronounced


async def test_words_without_a_pronunciation_are_left_out(tmp_path: Path) -> None:
    vocabulary = Vocabulary(("zorbleflax the report",))
    model = build_language_model(vocabulary, tmp_path)
    assert "zorbleflax" not in model.read_text()
    assert "zorbleflax" not in dictionary_path(model).read_text()
    engine = PocketsphinxRecognizer(tmp_path)
    try:
        transcript = await _transcribe(engine, vocabulary, _utterance("what's on my list"))
    finally:
        await engine.aclose()
    assert transcript.text == "what's on my list"


async def test_concurrent_utterances_get_their_own_decoders(
    recognizer: PocketsphinxRecognizer,
) -> None:
    # Which warm decoder (and so which learned cepstral mean) each stream gets depends on
    # timing, and a word can be misheard ("buy milk" once came back "buy a real"). Crossed
    # decoders would show as text nearer another utterance, or as mostly wrong text.
    said = ("transfer me to billing", "what's on my calendar tomorrow", "create a todo to buy milk")
    transcripts = await asyncio.gather(
        *(_transcribe(recognizer, VOCABULARY, _utterance(text)) for text in said)
    )
    for own, transcript in zip(said, transcripts, strict=True):
        error = word_error_rate(own, transcript.text)
        assert error < 0.5, (own, transcript.text)
        assert all(
            error < word_error_rate(other, transcript.text) for other in said if other != own
        )


async def test_a_finished_stream_refuses_more_audio(recognizer: PocketsphinxRecognizer) -> None:
    stream = await recognizer.open(VOCABULARY)
    await stream.feed(_utterance("goodbye"))
    assert await stream.finish() == "goodbye"
    with pytest.raises(SttError):
        await stream.feed(silence(20))
    await stream.aclose()
    await stream.aclose()
