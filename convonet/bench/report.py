"""The latency bench's figures: per-turn samples, percentiles, pairing and the printed table.

Pure functions over plain data, so the maths is tested without a running system.

A sample's parts are those of `convonet.speech.timings.TurnTimings`: the end-of-speech wait
(last voiced frame to the detector's decision, which precedes voice-to-voice), then STT
final, LLM first token and TTS first audio, which with `other_ms` (hand-offs and delivery
that none of them covers) make up voice-to-voice: end of speech to first reply audio.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FULL = "full"
DIRECT = "direct"
PATHS = (FULL, DIRECT)

END_OF_SPEECH = "end_of_speech_ms"
STT = "stt_final_ms"
LLM = "llm_first_token_ms"
TTS = "tts_first_audio_ms"
V2V = "voice_to_voice_ms"
OTHER = "other_ms"
# Reported by the system when it knows it; the direct path has no orchestration.
ORCHESTRATION = "orchestration_ms"

# The parts inside voice-to-voice, in the order they happen.
V2V_PARTS = (STT, LLM, TTS)
PARTS = (END_OF_SPEECH, STT, LLM, TTS, V2V)
OPTIONAL_PARTS = (ORCHESTRATION,)
LABELS = {
    END_OF_SPEECH: "end-of-speech wait",
    STT: "STT final",
    LLM: "LLM first token",
    TTS: "TTS first audio",
    OTHER: "other (hand-offs)",
    ORCHESTRATION: "orchestration",
    V2V: "voice-to-voice",
}
PERCENTILES = (50, 95, 99)

Timings = dict[str, float | None]


@dataclass
class TurnSample:
    """One spoken turn's figures, in milliseconds (None where the turn had no such step)."""

    path: str
    text: str
    voice: str
    call: int
    turn: int
    timings: Timings
    heard: str = ""
    reply: str = ""
    tools: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.voice}|{self.text}"

    def value(self, part: str) -> float | None:
        if part == OTHER:
            return other_ms(self.timings)
        return self.timings.get(part)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "key": self.key,
            "timings": {**self.timings, OTHER: self.value(OTHER)},
        }


def other_ms(timings: Timings) -> float | None:
    """Voice-to-voice not covered by STT, LLM and TTS (never negative)."""
    total = timings.get(V2V)
    parts = [timings.get(p) for p in V2V_PARTS]
    if total is None or any(p is None for p in parts):
        return None
    return max(0.0, total - sum(p for p in parts if p is not None))


def percentile(values: Iterable[float], p: float) -> float | None:
    """The p-th percentile (0..100) with linear interpolation between closest ranks
    (numpy's default method); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= p <= 100:
        raise ValueError("a percentile is between 0 and 100")
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Iterable[float | None]) -> dict[str, float | int | None]:
    present = [float(v) for v in values if v is not None]
    summary: dict[str, float | int | None] = {"n": len(present)}
    for p in PERCENTILES:
        summary[f"p{p}"] = _round(percentile(present, p))
    summary["mean"] = _round(sum(present) / len(present)) if present else None
    summary["min"] = _round(min(present)) if present else None
    summary["max"] = _round(max(present)) if present else None
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def parts_of(samples: Sequence[TurnSample]) -> list[str]:
    """The parts to report: the standard ones, `other`, and optional ones some sample has."""
    optional = [p for p in OPTIONAL_PARTS if any(s.timings.get(p) is not None for s in samples)]
    return [*PARTS[:-1], OTHER, *optional, V2V]


def path_summary(samples: Sequence[TurnSample]) -> dict[str, dict[str, float | int | None]]:
    return {part: summarize(s.value(part) for s in samples) for part in parts_of(samples)}


@dataclass
class Pair:
    key: str
    full: TurnSample
    direct: TurnSample

    @property
    def heard_alike(self) -> bool:
        return self.full.heard == self.direct.heard

    def overhead(self, part: str) -> float | None:
        full, direct = self.full.value(part), self.direct.value(part)
        if full is None or direct is None:
            return None
        return full - direct


def pair(full: Sequence[TurnSample], direct: Sequence[TurnSample]) -> list[Pair]:
    """Full-path samples matched with direct-path ones of the same utterance and voice, the
    k-th occurrence of a key with the k-th; samples left without a partner are dropped."""
    waiting: dict[str, deque[TurnSample]] = defaultdict(deque)
    for sample in direct:
        waiting[sample.key].append(sample)
    pairs: list[Pair] = []
    for sample in full:
        partners = waiting.get(sample.key)
        if partners:
            pairs.append(Pair(sample.key, sample, partners.popleft()))
    return pairs


def overhead_summary(pairs: Sequence[Pair]) -> dict[str, dict[str, float | int | None]]:
    fulls = [p.full for p in pairs]
    directs = [p.direct for p in pairs]
    parts = [p for p in parts_of(fulls) if p in parts_of(directs)]
    return {part: summarize(p.overhead(part) for p in pairs) for part in parts}


def build_report(
    meta: dict[str, Any],
    full: Sequence[TurnSample],
    direct: Sequence[TurnSample],
    failures: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Everything the bench measured, JSON-ready: summaries and the raw samples."""
    pairs = pair(full, direct)
    return {
        **meta,
        "paths": {
            FULL: {"summary": path_summary(full), "samples": [s.as_dict() for s in full]},
            DIRECT: {"summary": path_summary(direct), "samples": [s.as_dict() for s in direct]},
        },
        "overhead": {
            "summary": overhead_summary(pairs),
            # Pairs whose transcripts differ did different work (another tool, or none).
            "heard_alike": sum(p.heard_alike for p in pairs),
            "pairs": [
                {
                    "key": p.key,
                    "full": {"call": p.full.call, "turn": p.full.turn},
                    "direct": {"call": p.direct.call, "turn": p.direct.turn},
                    "heard_alike": p.heard_alike,
                    "ms": {part: _round(p.overhead(part)) for part in (*PARTS, OTHER)},
                }
                for p in pairs
            ],
        },
        "failures": list(failures),
    }


def format_report(report: dict[str, Any]) -> str:
    """The summary table: p50/p95/p99 per part for each path and for the paired overhead."""
    full = report["paths"][FULL]["summary"]
    direct = report["paths"][DIRECT]["summary"]
    overhead = report["overhead"]["summary"]
    parts = list(full) + [p for p in direct if p not in full]
    n_full = full.get(V2V, {}).get("n", 0)
    n_direct = direct.get(V2V, {}).get("n", 0)
    n_pairs = overhead.get(V2V, {}).get("n", 0)
    header = (
        f"{'ms':<20}{'full p50':>9}{'p95':>7}{'p99':>7} |{'direct p50':>11}{'p95':>7}{'p99':>7}"
        f" |{'overhead p50':>13}{'p95':>7}{'p99':>7}"
    )
    lines = [
        f"latency: {n_full} full-path turns, {n_direct} direct, {n_pairs} pairs"
        " (overhead = full - direct, same utterance and voice)",
        header,
        "-" * len(header),
    ]
    for part in parts:
        cells = [_cells(full.get(part)), _cells(direct.get(part)), _cells(overhead.get(part))]
        label = LABELS.get(part, part)
        lines.append(
            f"{label:<20}{cells[0][0]:>9}{cells[0][1]:>7}{cells[0][2]:>7} |"
            f"{cells[1][0]:>11}{cells[1][1]:>7}{cells[1][2]:>7} |"
            f"{cells[2][0]:>13}{cells[2][1]:>7}{cells[2][2]:>7}"
        )
    if n_pairs:
        alike = report["overhead"].get("heard_alike", 0)
        lines.append(f"both paths heard the same words in {alike} of {n_pairs} pairs")
    lines.append(
        "voice-to-voice runs from the end of speech to the first reply audio; the"
        " end-of-speech wait comes before it."
    )
    if ORCHESTRATION in parts:
        lines.append(
            "orchestration is voice-to-voice less the engines' own work on it, counted alike"
            " on both paths; it overlaps the parts above."
        )
    failures = report.get("failures") or []
    if failures:
        lines.append(f"{len(failures)} turn(s) failed; see the JSON for details.")
    return "\n".join(lines)


def _cells(summary: dict[str, Any] | None) -> tuple[str, str, str]:
    if not summary:
        return ("-", "-", "-")
    values = [summary.get(f"p{p}") for p in PERCENTILES]
    return tuple("-" if v is None else f"{v:.0f}" for v in values)  # type: ignore[return-value]
