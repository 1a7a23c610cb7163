"""Prometheus metrics of the edge and the worker, all in the default registry.

The edge serves them at `GET /metrics`; the worker, a separate process, on
`WORKER_METRICS_HOST:WORKER_METRICS_PORT`. Latencies are histograms (seconds) so that
percentiles can be computed across processes; see docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from convonet.agent.tool_specs import TOOLS_BY_NAME
from convonet.speech.timings import TurnTimings

# Voice latency: tens of milliseconds (engines, overhead) up to several seconds (a whole turn).
LATENCY_BUCKETS = (
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
)
# One bridged 20 ms frame's trip through Redis pub/sub: a few milliseconds when healthy.
BRIDGE_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
TOOL_BUCKETS = (0.005, 0.01, *LATENCY_BUCKETS)

TurnKind = Literal["voice", "text"]
Direction = Literal["to_agent", "to_caller"]

_M = TypeVar("_M", Counter, Gauge, Histogram)


def _metric(kind: Callable[..., _M], name: str, documentation: str, **options: Any) -> _M:
    """The registered collector of that name, created once: importing this module again
    (a reload, a second import path) must not register it twice."""
    full = f"convonet_{name}"
    existing = REGISTRY._names_to_collectors.get(full)  # noqa: SLF001 - no public lookup
    if existing is not None:
        return existing  # type: ignore[return-value]
    return kind(full, documentation, **options)


def _latency(name: str, documentation: str, labels: Sequence[str] = ()) -> Histogram:
    return _metric(Histogram, name, documentation, labelnames=labels, buckets=LATENCY_BUCKETS)


# ---- per turn, observed at the edge when the first reply audio leaves for the caller ----

VOICE_TO_VOICE = _latency(
    "voice_to_voice_seconds",
    "End of the caller's speech to the first reply audio leaving the edge.",
)
END_OF_SPEECH_WAIT = _latency(
    "end_of_speech_wait_seconds", "Last voiced frame to the VAD deciding the utterance ended."
)
STT_FINAL = _latency("stt_final_seconds", "End of speech to the final transcript.")
LLM_FIRST_TOKEN = _latency(
    "llm_first_token_seconds", "Final transcript (or typed text) to the first reply text."
)
TTS_FIRST_AUDIO = _latency("tts_first_audio_seconds", "First reply text to the first reply audio.")
ORCHESTRATION_OVERHEAD = _latency(
    "orchestration_overhead_seconds",
    "Voice-to-voice minus the time spent inside the engines (recognizer, LLM, synthesizer, "
    "tools) on the turn's critical path: workflow scheduling, Redis hops, glue.",
)

# ---- turns and connections, at the edge ----

TURNS = _metric(Counter, "turns", "Turns the assistant answered, by kind.", labelnames=("kind",))
TURN_ERRORS = _metric(
    Counter,
    "turn_errors",
    "Turns that failed: rejected by the conversation or the assistant unavailable.",
    labelnames=("kind",),
)
ACTIVE_CONVERSATIONS = _metric(
    Gauge, "active_conversations", "Logged-in caller connections of this edge process."
)
BRIDGE_AUDIO_DELAY = _metric(
    Histogram,
    "bridge_audio_delay_seconds",
    "A bridged frame's age when delivered: its send time on one side to its delivery on the other.",
    labelnames=("direction",),
    buckets=BRIDGE_BUCKETS,
)

# ---- in the worker ----

TOOL = _metric(
    Histogram,
    "tool_seconds",
    "One tool call's execution in the worker (idempotency check and commit included).",
    labelnames=("tool",),
    buckets=TOOL_BUCKETS,
)

# Label values are bounded: every series is created up front, so it exists (at zero) from the
# first scrape, and rate() across a restart sees it.
for _kind in ("voice", "text"):
    TURNS.labels(kind=_kind)
    TURN_ERRORS.labels(kind=_kind)
for _direction in ("to_agent", "to_caller"):
    BRIDGE_AUDIO_DELAY.labels(direction=_direction)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def observe_turn(figures: TurnTimings) -> None:
    """One spoken turn's figures; each histogram sees the figures the turn has (a typed turn
    has no speech, so it adds only to the LLM and TTS histograms)."""
    for histogram, ms in (
        (VOICE_TO_VOICE, figures.voice_to_voice_ms),
        (END_OF_SPEECH_WAIT, figures.end_of_speech_ms),
        (STT_FINAL, figures.stt_final_ms),
        (LLM_FIRST_TOKEN, figures.llm_first_token_ms),
        (TTS_FIRST_AUDIO, figures.tts_first_audio_ms),
        (ORCHESTRATION_OVERHEAD, figures.orchestration_ms),
    ):
        value = _seconds(ms)
        if value is not None:
            histogram.observe(value)


def count_turn(kind: TurnKind) -> None:
    TURNS.labels(kind=kind).inc()


def count_turn_error(kind: TurnKind) -> None:
    TURN_ERRORS.labels(kind=kind).inc()


def observe_bridge_delay(direction: Direction, seconds: float) -> None:
    BRIDGE_AUDIO_DELAY.labels(direction=direction).observe(max(0.0, seconds))


def observe_tool(tool: str, seconds: float) -> None:
    # The name comes from the LLM: anything not a real tool shares one series.
    TOOL.labels(tool=tool if tool in TOOLS_BY_NAME else "unknown").observe(seconds)
