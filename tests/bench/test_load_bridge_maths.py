"""The load and bridge benches' maths: frame markers, delay and jitter, histogram
quantiles, turn and history figures, the ramp's verdict, process sampling summaries."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from convonet.bench import report
from convonet.bench.load import history_figures, idle_figures, step_held, turn_figures
from convonet.bench.marker import (
    MODULUS,
    FrameClock,
    bucket_delta,
    bucket_quantile,
    delay_stats,
    histogram_summary,
    interarrival_deviations,
    jitter_rfc3550,
    marked_frame,
    parse_bridge_histogram,
    read_marker,
)
from convonet.bench.procs import BENCH_ROLE, Sample, Target, format_processes, process_summary
from convonet.speech import mulaw
from convonet.speech.telephony import Downsampler, Upsampler

# --- markers ---


@pytest.mark.parametrize("number", [0, 1, 15, 16, 255, 256, 4095])
def test_a_marker_reads_back_at_both_rates(number: int) -> None:
    assert read_marker(marked_frame(number)) == number
    assert read_marker(marked_frame(number, 8000), 8000) == number
    assert len(marked_frame(number)) == 640 and len(marked_frame(number, 8000)) == 320


def test_markers_wrap_and_other_audio_is_not_a_marker() -> None:
    assert read_marker(marked_frame(MODULUS + 5)) == 5
    assert read_marker(bytes(640)) is None
    noise = np.random.default_rng(3).integers(-20000, 20000, 320).astype("<i2").tobytes()
    assert read_marker(noise) is None
    assert read_marker(marked_frame(7)[:320]) is None  # not a whole 20 ms frame


def test_markers_survive_the_twilio_leg_both_ways() -> None:
    """Caller to agent: 16 kHz, downsampled, mu-law; agent to caller: mu-law, upsampled,
    frame after frame through the edge's own streaming converters."""
    down, up = Downsampler(), Upsampler()
    for number in range(200):
        to_agent = mulaw.decode(mulaw.encode(down(marked_frame(number))))
        assert read_marker(to_agent, 8000) == number
        to_caller = up(mulaw.decode(mulaw.encode(marked_frame(number, 8000))))
        assert read_marker(to_caller) == number


# --- delay and jitter ---


def test_delay_loss_and_duplicates() -> None:
    clock = FrameClock()
    for index in range(10):
        clock.sent(index * 0.020)
    # Frame 3 lost, frame 5 twice, frame 7 late (after 8); each 5 ms in transit but 7.
    for index in (0, 1, 2, 4, 5, 5, 6, 8, 7, 9):
        clock.arrived(index, index * 0.020 + (0.030 if index == 7 else 0.005))
    clock.arrived(None, 1.0)
    stats = delay_stats(clock, skip=1)
    assert stats["frames_sent"] == 9
    assert stats["frames_received"] == 8
    assert stats["frames_lost"] == 1 and stats["loss_pct"] == pytest.approx(11.11)
    assert stats["duplicates"] == 1 and stats["out_of_order"] == 1 and stats["unreadable"] == 1
    delay = stats["delay_ms"]
    assert delay["n"] == 8 and delay["p50"] == pytest.approx(5.0) and delay["max"] == 30.0


def test_markers_resolve_to_the_latest_frame_with_that_number() -> None:
    clock = FrameClock()
    for index in range(MODULUS + 3):
        clock.sent(float(index))
    clock.arrived(2, MODULUS + 2.5)  # frame 4098, not frame 2
    assert clock.arrivals == [(MODULUS + 2, MODULUS + 2.5)]
    empty = FrameClock()
    empty.arrived(0, 1.0)
    assert empty.unreadable == 1


def test_jitter_is_the_spread_of_interarrival_deviation() -> None:
    sends = [i * 0.020 for i in range(6)]
    delays = [0.005, 0.007, 0.005, 0.009, 0.005, 0.005]
    pairs = [(s, s + d) for s, d in zip(sends, delays, strict=True)]
    deviations = interarrival_deviations(pairs)
    assert deviations == pytest.approx([2.0, -2.0, 4.0, -4.0, 0.0])
    clock = FrameClock()
    for send in sends:
        clock.sent(send)
    for index, (_, arrival) in enumerate(pairs):
        clock.arrived(index, arrival)
    stats = delay_stats(clock)
    assert stats["jitter_ms"] == pytest.approx(statistics.pstdev(deviations), abs=0.01)
    expected = 0.0
    for d in deviations:
        expected += (abs(d) - expected) / 16
    assert jitter_rfc3550(deviations) == pytest.approx(expected)
    # Constant delay: no jitter at all.
    steady = interarrival_deviations([(s, s + 0.004) for s in sends])
    assert max(abs(d) for d in steady) < 1e-9


# --- the edge's histograms ---


def _exposition(delays: dict[str, list[float]]) -> str:
    registry = CollectorRegistry()
    histogram = Histogram(
        "convonet_bridge_audio_delay_seconds",
        "test",
        labelnames=("direction",),
        buckets=(0.002, 0.005, 0.01, 0.02, 0.04),
        registry=registry,
    )
    for direction, values in delays.items():
        series = histogram.labels(direction=direction)  # exported even with no observation
        for value in values:
            series.observe(value)
    return generate_latest(registry).decode()


def test_histogram_quantiles_from_a_scrape_delta() -> None:
    before = parse_bridge_histogram(_exposition({"to_agent": [0.001] * 10}))
    after = parse_bridge_histogram(
        _exposition({"to_agent": [0.001] * 10 + [0.003] * 50 + [0.015] * 50, "to_caller": []})
    )
    delta = bucket_delta(after, before)
    assert delta["to_agent"][-1] == (float("inf"), 100.0)
    # Ranks 50 and 95 of 100: inside (0.002, 0.005] and (0.01, 0.02], linearly.
    assert bucket_quantile(0.5, delta["to_agent"]) == pytest.approx(0.005)
    assert bucket_quantile(0.95, delta["to_agent"]) == pytest.approx(0.019)
    summary = histogram_summary(delta)
    assert summary["to_agent"] == {"frames": 100, "p50_ms": 5.0, "p95_ms": 19.0, "p99_ms": 19.8}
    assert summary["to_caller"]["frames"] == 0 and summary["to_caller"]["p50_ms"] is None


def test_histogram_quantile_edges() -> None:
    assert bucket_quantile(0.5, []) is None
    assert bucket_quantile(0.5, [(0.01, 0.0), (float("inf"), 0.0)]) is None
    # Everything beyond the last finite bound: answered with that bound.
    assert bucket_quantile(0.99, [(0.01, 0.0), (float("inf"), 5.0)]) == 0.01


# --- load figures ---


def _turn(failure: str | None = None, v2v: float | None = 500.0, turn: int = 1) -> dict:
    return {
        "turn": turn,
        "key": "en-us|list my teams",
        "failure": failure,
        "error": failure or "",
        "replied": failure in (None, "missing_timings", "not_heard"),
        "timings": {report.V2V: v2v, report.STT: 100.0},
    }


def test_turn_figures_count_failures_by_kind_and_summarize_the_rest() -> None:
    callers = [
        {"index": 0, "turns": [_turn(v2v=400), _turn("no_reply", None, 2)]},
        {"index": 1, "turns": [_turn(v2v=600), _turn("missing_timings", None, 2)]},
    ]
    figures = turn_figures(callers, duration_s=10)
    assert figures["turns"] == 4 and figures["succeeded"] == 2 and figures["failed"] == 2
    assert figures["failures"] == {
        "no_reply": 1,
        "error": 0,
        "missing_timings": 1,
        "not_heard": 0,
    }
    assert figures["parts"][report.V2V]["p50"] == 500.0 and figures["turns_per_s"] == 0.4
    assert len(figures["failure_examples"]) == 2


def test_a_ramp_step_holds_only_with_no_failure_and_p95_within_target() -> None:
    good = turn_figures([{"index": 0, "turns": [_turn(v2v=800)] * 4}], 10)
    assert step_held(good, 1000)[0] is True
    assert step_held(good, 700) == (False, "voice-to-voice p95 800 ms > 700 ms")
    failed = turn_figures([{"index": 0, "turns": [_turn(v2v=100), _turn("error", None)]}], 10)
    assert step_held(failed, 1000) == (False, "1 of 2 turns failed")
    assert step_held(turn_figures([], 10), 1000) == (False, "no turn was spoken")


def test_history_per_turn() -> None:
    rows = [
        {"conversation_id": "a", "turns": 4, "events": 100, "bytes": 40_000},
        {"conversation_id": "b", "turns": 2, "events": 80, "bytes": 10_000},
        {"conversation_id": "c", "turns": 0, "events": 20, "bytes": 1_000},  # nothing said
        {"conversation_id": "d", "turns": 3, "events": None, "bytes": None, "error": "gone"},
    ]
    figures = history_figures(rows)
    assert figures["conversations"] == 4 and figures["measured"] == 2
    assert figures["events_per_turn"] == {"mean": 32.5, "max": 40.0}
    assert figures["bytes_per_turn"] == {"mean": 7500.0, "max": 10000.0}
    assert figures["overall_events_per_turn"] == 30.0


def test_idle_figures_project_to_a_thousand() -> None:
    figures = idle_figures(200, 200, baseline_mb=500.0, loaded_mb=700.0)
    assert figures["per_conversation_kb"] == 1024.0
    assert figures["projected_rss_mb_for_1000"] == 1500.0 and figures["meets_target"] is True
    assert idle_figures(10, 0, 500.0, 500.0)["meets_target"] is None


def test_process_summary_totals_each_sample() -> None:
    targets = [
        Target(1, ["api"], "python", ""),
        Target(2, ["temporal"], "temporal", ""),
        Target(3, [BENCH_ROLE], "python", ""),
    ]
    mb = 1024 * 1024
    samples = [
        Sample(0.0, {1: (10.0, 100 * mb), 2: (20.0, 200 * mb), 3: (80.0, 90 * mb)}, 30.0),
        Sample(1.0, {1: (30.0, 150 * mb), 2: (20.0, 200 * mb), 99: (500.0, 1000 * mb)}, 50.0),
        Sample(2.0, {2: (40.0, 210 * mb)}),  # the API was not readable this time
    ]
    summary = process_summary(targets, samples)
    api, temporal, bench = summary["processes"]
    assert bench["rss_mb"]["max"] == 90.0  # shown, but not the system's
    assert api["samples"] == 2 and api["cpu_pct"] == {"mean": 20.0, "max": 30.0}
    assert api["rss_mb"] == {"mean": 125.0, "max": 150.0}
    assert temporal["rss_mb"]["max"] == 210.0
    # Totals per sample (300, 350, 210 MB), never counting a process that is not ours.
    assert summary["total"]["rss_mb"] == {"mean": 286.7, "max": 350.0}
    assert summary["total"]["cpu_pct"]["max"] == 50.0
    assert summary["missing_roles"] == ["worker", "redis"]
    assert summary["machine"]["cpu_pct_of_all_cores"] == {"mean": 40.0, "max": 50.0}
    printed = "\n".join(format_processes(summary))
    assert "(the bench callers, apart)" in printed and "not found" in printed
