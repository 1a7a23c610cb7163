"""The text-to-speech interface every engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator


class TtsError(Exception):
    """The engine could not synthesize (connection lost, refused, bad text)."""


class SpeechSynthesizer(ABC):
    name: str

    @abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Speaks one sentence: yields 16 kHz 16-bit mono PCM chunks as soon as each is ready."""

    async def aclose(self) -> None:  # noqa: B027 - engines without connections need nothing
        """Releases connections held across sentences."""
