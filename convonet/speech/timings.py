"""Per-turn latency figures, derived from the epoch-millisecond marks in a turn's Redis hash.

Marks are written by whoever saw the moment: the edge (last voiced frame, end of speech,
text received), the transcriber (final transcript), the LLM step (first reply text) and the
speaker (first reply audio).
"""

from __future__ import annotations

from pydantic import BaseModel

LAST_VOICE = "last_voice_at"
SPEECH_END = "speech_end_at"
TEXT_RECEIVED = "text_at"
STT_FINAL = "stt_final_at"
FIRST_TOKEN = "first_token_at"
FIRST_AUDIO = "first_audio_at"


class TurnTimings(BaseModel):
    """Milliseconds; None where the turn had no such step (a typed turn has no speech)."""

    end_of_speech_ms: int | None = None
    stt_final_ms: int | None = None
    llm_first_token_ms: int | None = None
    tts_first_audio_ms: int | None = None
    voice_to_voice_ms: int | None = None


def _gap(marks: dict[str, int], start: str, end: str) -> int | None:
    if start in marks and end in marks:
        return max(0, marks[end] - marks[start])
    return None


def timings_from_marks(marks: dict[str, int]) -> TurnTimings:
    heard_at = STT_FINAL if STT_FINAL in marks else TEXT_RECEIVED
    return TurnTimings(
        end_of_speech_ms=_gap(marks, LAST_VOICE, SPEECH_END),
        stt_final_ms=_gap(marks, SPEECH_END, STT_FINAL),
        llm_first_token_ms=_gap(marks, heard_at, FIRST_TOKEN),
        tts_first_audio_ms=_gap(marks, FIRST_TOKEN, FIRST_AUDIO),
        voice_to_voice_ms=_gap(marks, SPEECH_END, FIRST_AUDIO),
    )
