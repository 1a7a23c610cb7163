"""Numbered audio frames for the bridge bench, and the delay and jitter maths over them.

Each 20 ms frame carries its number in its samples, so a receiver can tell which frame it
got even after the Twilio leg has turned it into 8 kHz mu-law and back: the frame is four
equal segments, each held at one of 16 DC levels. The first segment is a sync level; the
other three carry 4 bits each of the frame number modulo 4096 (82 s of frames). A steady
level survives both the edge's resamplers (their low-pass passes DC, and smears only a
millisecond at each step) and mu-law (whose step at these levels is at most 1024, half the
distance between levels); the decoder reads the median of each segment's middle.

Pure functions over plain data, so the maths is tested without a running system.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convonet.bench.report import summarize

FRAME_S = 0.020
SEGMENTS = 4
DATA_SEGMENTS = SEGMENTS - 1
BITS = 4
LEVELS = 1 << BITS
MODULUS = LEVELS**DATA_SEGMENTS  # 4096 frames
STEP = 2000
LOWEST = -15000  # level of value 0; value 15 is +15000
SYNC = LEVELS - 1
# A segment's median must be this close to a level to count (half the spacing is 1000).
TOLERANCE = 700
# Where in each segment the decoder looks: clear of the resamplers' smear at its start.
WINDOW = (0.45, 0.95)


def level(value: int) -> int:
    return LOWEST + value * STEP


def marked_frame(number: int, rate: int = 16_000) -> bytes:
    """A 20 ms frame of 16-bit PCM at `rate` carrying `number` (modulo 4096)."""
    samples = round(rate * FRAME_S)
    if samples % SEGMENTS:
        raise ValueError(f"a 20 ms frame at {rate} Hz does not split into {SEGMENTS} segments")
    values = [SYNC] + [(number % MODULUS) >> (BITS * i) & (LEVELS - 1) for i in range(3)]
    size = samples // SEGMENTS
    return np.repeat(np.array([level(v) for v in values], dtype="<i2"), size).tobytes()


def read_marker(pcm: bytes, rate: int = 16_000) -> int | None:
    """The number a received frame carries (modulo 4096); None for anything else."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    if len(samples) != round(rate * FRAME_S):
        return None
    size = len(samples) // SEGMENTS
    start, end = int(size * WINDOW[0]), int(size * WINDOW[1])
    values: list[int] = []
    for index in range(SEGMENTS):
        middle = float(np.median(samples[index * size + start : index * size + end]))
        value = round((middle - LOWEST) / STEP)
        if not 0 <= value < LEVELS or abs(middle - level(value)) > TOLERANCE:
            return None
        values.append(value)
    if values[0] != SYNC:
        return None
    return sum(v << (BITS * i) for i, v in enumerate(values[1:]))


@dataclass
class FrameClock:
    """One direction of the bridge: when each numbered frame was sent and when frames
    arrived (times in seconds on one clock, e.g. `time.perf_counter()`)."""

    sent_at: list[float] = field(default_factory=list)
    # (frame index, arrival time) in arrival order; the index resolves the marker's wrap.
    arrivals: list[tuple[int, float]] = field(default_factory=list)
    unreadable: int = 0

    def sent(self, at: float) -> int:
        self.sent_at.append(at)
        return len(self.sent_at) - 1

    def arrived(self, marker: int | None, at: float) -> None:
        """A frame arrived carrying `marker`: matched to the latest frame sent with that
        number (frames are sent 20 ms apart, so a wrap is 82 s away)."""
        if marker is None or not self.sent_at:
            self.unreadable += 1
            return
        latest = len(self.sent_at) - 1
        index = latest - ((latest - marker) % MODULUS)
        if index < 0:
            self.unreadable += 1
            return
        self.arrivals.append((index, at))


def delay_stats(clock: FrameClock, skip: int = 0) -> dict[str, Any]:
    """Delay (arrival - send) per frame, jitter and losses, in milliseconds; frames before
    `skip` (the bridge settling in) are left out of every figure."""
    counted = range(skip, len(clock.sent_at))
    seen: set[int] = set()
    delays: list[float] = []
    duplicates = 0
    out_of_order = 0
    highest = -1
    ordered: list[tuple[float, float]] = []  # (send, arrival) of first arrivals, in order
    for index, at in clock.arrivals:
        if index < skip:
            continue
        if index in seen:
            duplicates += 1
            continue
        seen.add(index)
        if index < highest:
            out_of_order += 1
        highest = max(highest, index)
        sent = clock.sent_at[index]
        delays.append((at - sent) * 1000)
        ordered.append((sent, at))
    deviations = interarrival_deviations(ordered)
    return {
        "frames_sent": len(counted),
        "frames_received": len(seen),
        "frames_lost": len(counted) - len(seen),
        "loss_pct": round(100 * (len(counted) - len(seen)) / len(counted), 2) if counted else None,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "unreadable": clock.unreadable,
        "delay_ms": summarize(delays),
        "jitter_ms": _round(jitter_std(deviations)),
        "jitter_rfc3550_ms": _round(jitter_rfc3550(deviations)),
    }


def interarrival_deviations(pairs: Sequence[tuple[float, float]]) -> list[float]:
    """D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}) in ms for consecutive arrivals, given
    (send, arrival) times in seconds in arrival order: how much later (or earlier) each
    frame came than its spacing at the sender promised."""
    return [
        ((r1 - r0) - (s1 - s0)) * 1000 for (s0, r0), (s1, r1) in zip(pairs, pairs[1:], strict=False)
    ]


def jitter_std(deviations: Sequence[float]) -> float | None:
    """The standard deviation of the inter-arrival deviations (population), in ms."""
    if len(deviations) < 2:
        return None
    return statistics.pstdev(deviations)


def jitter_rfc3550(deviations: Iterable[float]) -> float | None:
    """RTP's running jitter estimate (RFC 3550 6.4.1: J += (|D| - J) / 16), at the end."""
    jitter: float | None = None
    for deviation in deviations:
        jitter = (jitter or 0.0) + (abs(deviation) - (jitter or 0.0)) / 16
    return jitter


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 2)


# --- the edge's own view: the bridge_audio_delay_seconds histograms at /metrics --------------

BRIDGE_METRIC = "convonet_bridge_audio_delay_seconds"
Buckets = dict[str, list[tuple[float, float]]]  # direction -> [(upper bound, cumulative count)]


def parse_bridge_histogram(text: str) -> Buckets:
    """The cumulative buckets of `convonet_bridge_audio_delay_seconds` per direction, from
    Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    found: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name != BRIDGE_METRIC:
            continue
        for sample in family.samples:
            if sample.name != f"{BRIDGE_METRIC}_bucket":
                continue
            direction = sample.labels.get("direction", "")
            bound = float(sample.labels["le"])
            found.setdefault(direction, []).append((bound, float(sample.value)))
    return {d: sorted(b) for d, b in found.items()}


def bucket_delta(after: Buckets, before: Buckets) -> Buckets:
    """What was observed between two scrapes."""
    delta: Buckets = {}
    for direction, buckets in after.items():
        earlier = dict(before.get(direction, []))
        delta[direction] = [(bound, count - earlier.get(bound, 0.0)) for bound, count in buckets]
    return delta


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-th rank
    (0 as the lower bound of the first); None for an empty histogram. The +Inf bucket
    answers with the highest finite bound."""
    if not buckets or not 0 <= q <= 1:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def histogram_summary(buckets: Buckets) -> dict[str, dict[str, float | int | None]]:
    """Per direction: frames observed, and p50/p95/p99 estimated from the buckets (ms)."""
    summary: dict[str, dict[str, float | int | None]] = {}
    for direction, cumulative in sorted(buckets.items()):
        entry: dict[str, float | int | None] = {
            "frames": int(cumulative[-1][1]) if cumulative else 0
        }
        for p in (50, 95, 99):
            value = bucket_quantile(p / 100, cumulative)
            entry[f"p{p}_ms"] = None if value is None else round(value * 1000, 1)
        summary[direction] = entry
    return summary
