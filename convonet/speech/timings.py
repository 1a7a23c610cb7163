"""Per-turn latency figures, derived from the epoch-millisecond marks in a turn's Redis hash.

Marks are written by whoever saw the moment: the edge (last voiced frame, end of speech,
text received), the transcriber (final transcript), the LLM step (first reply text) and the
speaker (first reply audio).

The activities also record how long the engines themselves worked on the turn's critical
path (milliseconds, not moments): the recognizer after the end of speech, each LLM step and
tool call before the first reply audio, and the synthesizer on the first sentence. What
voice-to-voice spends outside them is the orchestration overhead.
"""

from __future__ import annotations

from pydantic import BaseModel

LAST_VOICE = "last_voice_at"
SPEECH_END = "speech_end_at"
TEXT_RECEIVED = "text_at"
STT_FINAL = "stt_final_at"
FIRST_TOKEN = "first_token_at"
FIRST_AUDIO = "first_audio_at"

# Engine durations, milliseconds. A turn may take several LLM steps and tool calls; each
# records its own field, `<kind>.<epoch ms it started>.<activity id>`, and only those that
# started before the first reply audio count (the rest were not on the critical path).
STT_ENGINE = "stt_engine_ms"
LLM_ENGINE = "llm_engine_ms"
TOOL_ENGINE = "tool_engine_ms"
TTS_ENGINE = "tts_engine_ms"


def step_field(kind: str, started_ms: int, step_id: str) -> str:
    return f"{kind}.{started_ms}.{step_id}"


def _step_started(field: str) -> int | None:
    parts = field.split(".")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


class TurnTimings(BaseModel):
    """Milliseconds; None where the turn had no such step (a typed turn has no speech)."""

    end_of_speech_ms: int | None = None
    stt_final_ms: int | None = None
    llm_first_token_ms: int | None = None
    tts_first_audio_ms: int | None = None
    voice_to_voice_ms: int | None = None
    # Voice-to-voice minus the engines' own time on the critical path (None if not measured).
    orchestration_ms: int | None = None


def _gap(marks: dict[str, int], start: str, end: str) -> int | None:
    if start in marks and end in marks:
        return max(0, marks[end] - marks[start])
    return None


def _summed(marks: dict[str, int], kind: str, before: int | None) -> int | None:
    """The figures of one kind; per-step ones only for steps started before `before`."""
    values: list[int] = []
    for field, value in marks.items():
        if field == kind:
            values.append(value)
        elif field.startswith(kind + "."):
            started = _step_started(field)
            if before is None or (started is not None and started < before):
                values.append(value)
    return sum(values) if values else None


def engine_ms(marks: dict[str, int], first_audio_at: int | None = None) -> int | None:
    """The engines' time on the turn's critical path (up to the first reply audio); None
    unless the recognizer, an LLM step and the synthesizer all reported (tools optional)."""
    before = marks.get(FIRST_AUDIO, first_audio_at)
    parts = [_summed(marks, kind, before) for kind in (STT_ENGINE, LLM_ENGINE, TTS_ENGINE)]
    if any(part is None for part in parts):
        return None
    return sum(part or 0 for part in parts) + (_summed(marks, TOOL_ENGINE, before) or 0)


def orchestration_ms(voice_to_voice: int | None, engines: int | None) -> int | None:
    """Voice-to-voice minus the engines' time, floored at zero (marks from two clocks can
    disagree by a millisecond or two)."""
    if voice_to_voice is None or engines is None:
        return None
    return max(0, voice_to_voice - engines)


def timings_from_marks(marks: dict[str, int], audio_sent_at: int | None = None) -> TurnTimings:
    """`audio_sent_at` (epoch ms): when the edge sent the first reply audio to the caller;
    voice-to-voice ends there rather than at the speaker's first-audio mark."""
    heard_at = STT_FINAL if STT_FINAL in marks else TEXT_RECEIVED
    voice_to_voice = _gap(marks, SPEECH_END, FIRST_AUDIO)
    if audio_sent_at is not None and SPEECH_END in marks:
        voice_to_voice = max(0, audio_sent_at - marks[SPEECH_END])
    return TurnTimings(
        end_of_speech_ms=_gap(marks, LAST_VOICE, SPEECH_END),
        stt_final_ms=_gap(marks, SPEECH_END, STT_FINAL),
        llm_first_token_ms=_gap(marks, heard_at, FIRST_TOKEN),
        tts_first_audio_ms=_gap(marks, FIRST_TOKEN, FIRST_AUDIO),
        voice_to_voice_ms=voice_to_voice,
        orchestration_ms=orchestration_ms(voice_to_voice, engine_ms(marks, audio_sent_at)),
    )
