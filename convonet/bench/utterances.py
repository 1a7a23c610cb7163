"""The spoken commands the latency bench sends: eSpeak NG speech in several voices.

Every command is one the embedded intent model answers (most with a tool call), and one
that pocketsphinx hears reliably in the default voices, so both the full and the direct
path do the same work for the same audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from convonet.engines.tts.espeak import EspeakSynthesizer
from convonet.speech.audio import duration_ms, silence

COMMANDS: tuple[str, ...] = (
    "what's on my list",
    "create a todo to buy milk",
    "what's on my calendar today",
    "list my teams",
    "what reminders do I have",
    "remind me to call mom tomorrow at ten",
    "list the departments",
    "add a todo to water the plants",
)
# eSpeak NG voices: a language ("en-gb") optionally with a variant ("+f3" female, "+m3" male).
DEFAULT_VOICES: tuple[str, ...] = ("en-us", "en-gb", "en-us+f3")
SPEED_WPM = 160
# A little silence first, so the detector's pre-roll has something before the first word,
# and enough after it for the end-of-speech detector to end the utterance.
LEAD_SILENCE_MS = 200
TRAILING_SILENCE_MS = 600


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str
    # 16 kHz 16-bit mono PCM, silence included.
    pcm: bytes

    @property
    def key(self) -> str:
        """What pairs a full-path sample with a direct-path one: the same words, same voice."""
        return f"{self.voice}|{self.text}"

    @property
    def audio_ms(self) -> int:
        return duration_ms(self.pcm)


def synthesize(text: str, voice: str, speed_wpm: int = SPEED_WPM) -> Utterance:
    speech = EspeakSynthesizer(voice, speed_wpm).synthesize_pcm(text)
    pcm = silence(LEAD_SILENCE_MS) + speech + silence(TRAILING_SILENCE_MS)
    return Utterance(text=text, voice=voice, pcm=pcm)


def utterance_set(
    commands: Sequence[str] = COMMANDS, voices: Sequence[str] = DEFAULT_VOICES
) -> list[Utterance]:
    """Every command in every voice, ordered so that consecutive turns differ in both words
    and voice (voice-major rotation: c0/v0, c1/v1, c2/v2, c3/v0, ...)."""
    if not commands or not voices:
        raise ValueError("the bench needs at least one command and one voice")
    made: list[Utterance] = []
    for round_ in range(len(voices)):
        for index, text in enumerate(commands):
            voice = voices[(index + round_) % len(voices)]
            made.append(synthesize(text, voice))
    return made


def schedule(utterances: Sequence[Utterance], calls: int, turns: int) -> list[list[Utterance]]:
    """The turns of each call: the set in order, wrapping around, so N calls of T turns
    cover min(N*T, len(set)) distinct utterances and repeat the set evenly beyond that."""
    if not utterances:
        return [[] for _ in range(calls)]
    return [
        [utterances[(call * turns + turn) % len(utterances)] for turn in range(turns)]
        for call in range(calls)
    ]
