"""Finds where an utterance starts and ends in a stream of 16 kHz frames (WebRTC VAD).

Used by the edge on the live audio, so the end of speech is known without any round trip.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import webrtcvad

from convonet.speech.audio import FRAME_BYTES, FRAME_MS, SAMPLE_RATE

# Speech starts after this many voiced frames among the last START_WINDOW (noise rarely does).
START_VOICED = 4
START_WINDOW = 6
# Audio kept from before the detected start, so the first syllable is not clipped.
PREROLL_MS = 300


class VadEvent(StrEnum):
    START = "start"
    END = "end"


@dataclass
class VadResult:
    """What one frame changed: an event (or None) and the frames that belong to the utterance."""

    event: VadEvent | None = None
    frames: list[bytes] = field(default_factory=list)
    # For END: how long the detector waited after the last voiced frame, in ms.
    trailing_silence_ms: int = 0


class Endpointer:
    def __init__(
        self,
        end_silence_ms: int,
        aggressiveness: int = 2,
        max_utterance_ms: int = 30_000,
        hands_free: bool = True,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.end_silence_frames = max(1, end_silence_ms // FRAME_MS)
        self.max_frames = max_utterance_ms // FRAME_MS
        self._history: deque[bool] = deque(maxlen=START_WINDOW)
        self._preroll: deque[bytes] = deque(maxlen=PREROLL_MS // FRAME_MS)
        self._carry = b""
        self.in_speech = False
        self._silent_run = 0
        self._frames_in_utterance = 0
        # Push-to-talk starts with the first frame and ends on the button, not on silence.
        self.hands_free = hands_free

    def push(self, pcm: bytes) -> list[VadResult]:
        """Feeds audio of any length; decisions are made per 20 ms frame."""
        self._carry += pcm
        results: list[VadResult] = []
        while len(self._carry) >= FRAME_BYTES:
            frame, self._carry = self._carry[:FRAME_BYTES], self._carry[FRAME_BYTES:]
            results.append(self._frame(frame))
        return [r for r in results if r.event is not None or r.frames]

    def _frame(self, frame: bytes) -> VadResult:
        voiced = self._vad.is_speech(frame, SAMPLE_RATE)
        if not self.in_speech and not self.hands_free:
            self.in_speech = True
            self._frames_in_utterance = 1
            return VadResult(VadEvent.START, [frame])
        if not self.in_speech:
            self._history.append(voiced)
            self._preroll.append(frame)
            if sum(self._history) >= START_VOICED:
                self.in_speech = True
                self._silent_run = 0
                self._frames_in_utterance = len(self._preroll)
                frames = list(self._preroll)
                self._preroll.clear()
                self._history.clear()
                return VadResult(VadEvent.START, frames)
            return VadResult()
        self._frames_in_utterance += 1
        self._silent_run = 0 if voiced else self._silent_run + 1
        if self.hands_free and self._silent_run >= self.end_silence_frames:
            return self._end([frame])
        if self._frames_in_utterance >= self.max_frames:
            return self._end([frame])
        return VadResult(None, [frame])

    def force_end(self) -> VadResult | None:
        """Ends the utterance now (push-to-talk released); None when not in speech."""
        if not self.in_speech:
            return None
        return self._end([])

    def _end(self, frames: list[bytes]) -> VadResult:
        waited = self._silent_run * FRAME_MS
        self.in_speech = False
        self._silent_run = 0
        self._frames_in_utterance = 0
        self._history.clear()
        return VadResult(VadEvent.END, frames, trailing_silence_ms=waited)
