"""The latency bench's maths: percentiles, pairing, overhead and the report's shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convonet.bench import report
from convonet.bench.report import TurnSample
from convonet.bench.utterances import Utterance, schedule


def sample(
    path: str,
    text: str = "list my teams",
    voice: str = "en-us",
    v2v: float | None = 400,
    stt: float | None = 100,
    llm: float | None = 150,
    tts: float | None = 50,
    call: int = 1,
    turn: int = 1,
    **extra: float | None,
) -> TurnSample:
    timings: report.Timings = {
        report.END_OF_SPEECH: 300,
        report.STT: stt,
        report.LLM: llm,
        report.TTS: tts,
        report.V2V: v2v,
        **extra,
    }
    return TurnSample(path=path, text=text, voice=voice, call=call, turn=turn, timings=timings)


@pytest.mark.parametrize("p", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentiles_match_numpy_linear_interpolation(p: float) -> None:
    values = [812.0, 3.0, 45.5, 120.0, 7.0, 7.0, 99.0, 1000.0, 250.0, 61.0, 33.3]
    assert report.percentile(values, p) == pytest.approx(float(np.percentile(values, p)))


def test_percentile_edge_cases() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([42.0], 99) == 42.0
    assert report.percentile([10.0, 20.0], 50) == 15.0
    with pytest.raises(ValueError):
        report.percentile([1.0], 101)


def test_summary_ignores_missing_values() -> None:
    summary = report.summarize([None, 10, 20, 30, None, 40])
    assert summary == {
        "n": 4,
        "p50": 25.0,
        "p95": 38.5,
        "p99": 39.7,
        "mean": 25.0,
        "min": 10.0,
        "max": 40.0,
    }
    empty = report.summarize([None])
    assert empty["n"] == 0 and empty["p50"] is None and empty["mean"] is None


def test_other_is_what_the_parts_leave_of_voice_to_voice() -> None:
    assert sample("full", v2v=400, stt=100, llm=150, tts=50).value(report.OTHER) == 100
    # Clock skew between processes can make the parts add up past the total: never negative.
    assert sample("full", v2v=290, stt=100, llm=150, tts=50).value(report.OTHER) == 0
    assert sample("full", tts=None).value(report.OTHER) is None


def test_pairs_match_same_utterance_and_voice_in_order_of_occurrence() -> None:
    full = [
        sample("full", "a", "en-us", v2v=500, call=1, turn=1),
        sample("full", "b", "en-gb", v2v=600, call=1, turn=2),
        sample("full", "a", "en-us", v2v=700, call=2, turn=1),
        sample("full", "a", "en-gb", v2v=800, call=2, turn=2),  # never on the direct path
    ]
    direct = [
        sample("direct", "b", "en-gb", v2v=250, call=1, turn=2),
        sample("direct", "a", "en-us", v2v=200, call=1, turn=1),
        sample("direct", "a", "en-us", v2v=300, call=2, turn=1),
        sample("direct", "c", "en-us", v2v=100, call=2, turn=2),  # never on the full path
    ]
    pairs = report.pair(full, direct)
    assert [(p.key, p.full.call, p.direct.call) for p in pairs] == [
        ("en-us|a", 1, 1),
        ("en-gb|b", 1, 1),
        ("en-us|a", 2, 2),
    ]
    assert [p.overhead(report.V2V) for p in pairs] == [300, 350, 400]
    overhead = report.overhead_summary(pairs)[report.V2V]
    assert overhead["n"] == 3 and overhead["p50"] == 350 and overhead["max"] == 400


def test_overhead_of_a_part_missing_on_one_side_is_left_out() -> None:
    pairs = report.pair([sample("full", llm=None)], [sample("direct")])
    summary = report.overhead_summary(pairs)
    assert summary[report.LLM]["n"] == 0
    assert summary[report.STT]["n"] == 1


def test_optional_parts_are_reported_only_when_present() -> None:
    plain = report.path_summary([sample("direct")])
    assert report.ORCHESTRATION not in plain
    assert list(plain)[-1] == report.V2V and report.OTHER in plain
    with_orchestration = report.path_summary([sample("full", orchestration_ms=42)])
    assert with_orchestration[report.ORCHESTRATION]["p50"] == 42


def test_report_is_json_with_both_paths_raw_samples_and_a_table() -> None:
    full = [sample("full", v2v=400 + i * 10, turn=i) for i in range(1, 5)]
    direct = [sample("direct", v2v=150 + i, turn=i) for i in range(1, 5)]
    failures = [{"path": "full", "call": 1, "turn": 5, "key": "en-us|x", "error": "timeout"}]
    figures = report.build_report({"bench": "latency"}, full, direct, failures)
    again = json.loads(json.dumps(figures))
    assert again["bench"] == "latency"
    assert again["paths"]["full"]["summary"][report.V2V]["p50"] == 425
    assert again["paths"]["direct"]["summary"][report.V2V]["p50"] == 152.5
    assert len(again["paths"]["full"]["samples"]) == 4
    assert again["paths"]["direct"]["samples"][0]["key"] == "en-us|list my teams"
    assert again["overhead"]["summary"][report.V2V]["p50"] == 272.5
    assert len(again["overhead"]["pairs"]) == 4
    assert again["overhead"]["heard_alike"] == 4 and again["overhead"]["pairs"][0]["heard_alike"]
    table = report.format_report(figures)
    assert "4 full-path turns, 4 direct, 4 pairs" in table
    assert "voice-to-voice" in table and "1 turn(s) failed" in table
    assert "both paths heard the same words in 4 of 4 pairs" in table
    v2v_row = next(line for line in table.splitlines() if line.startswith("voice-to-voice "))
    assert v2v_row.split()[1:4] == ["425", "438", "440"]  # p95 438.5, shown rounded


def test_schedule_rotates_through_the_set() -> None:
    made = [Utterance(text=f"t{i}", voice="en-us", pcm=b"") for i in range(5)]
    plan = schedule(made, calls=3, turns=2)
    assert [[u.text for u in call] for call in plan] == [["t0", "t1"], ["t2", "t3"], ["t4", "t0"]]
