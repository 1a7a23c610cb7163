"""The speech-to-text interface every engine implements.

Audio arrives as 16 kHz 16-bit mono PCM (convonet.speech.audio) in small chunks while the
caller is still speaking; the engine reports interim text as it goes and the final text
once the utterance is complete.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


class SttError(Exception):
    """The engine could not transcribe (connection lost, refused, bad audio)."""


@dataclass(frozen=True)
class Vocabulary:
    """Words the caller is likely to say beyond the assistant's own phrases:
    their todo titles, team names and team members' names."""

    phrases: tuple[str, ...] = field(default_factory=tuple)


class RecognitionStream(ABC):
    """One utterance being transcribed."""

    @abstractmethod
    async def feed(self, pcm: bytes) -> str | None:
        """Adds audio; returns new interim text when the hypothesis changed, else None."""

    @abstractmethod
    async def finish(self) -> str:
        """Signals the end of the utterance and returns the final transcript ('' if none)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Releases the stream's resources; safe to call more than once."""


class SpeechRecognizer(ABC):
    name: str

    @abstractmethod
    async def open(self, vocabulary: Vocabulary) -> RecognitionStream:
        """Starts transcribing one utterance with the caller's vocabulary."""

    async def aclose(self) -> None:  # noqa: B027 - engines holding nothing need nothing
        """Releases what the engine holds (processes, connections); safe to call twice."""
