"""`convonet bench latency` end to end: a real system, both paths, the JSON and the PNG.

Latency figures depend on the machine; these tests check their shape and consistency only.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from convonet.bench import report
from convonet.bench.cli import run
from convonet.bench.latency import LatencyOptions, run_latency
from convonet.bench.utterances import COMMANDS
from convonet.db.models import Todo
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import free_port, running_system

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def test_latency_bench_measures_both_paths(settings: Settings, tmp_path: Path) -> None:
    await seed(settings)
    json_path, plot_path = tmp_path / "latency.json", tmp_path / "latency.png"
    printed: list[str] = []
    async with running_system(settings) as system:
        options = LatencyOptions(
            url=system.url,
            calls=1,
            turns=2,
            voices=("en-us",),
            commands=COMMANDS[:2],
            warmup=0,
            timeout_s=45,
            json_path=json_path,
            plot_path=plot_path,
        )
        code = await run_latency(settings, options, out=printed.append)

    output = "\n".join(printed)
    assert code == 0, output
    figures = json.loads(json_path.read_text())
    assert figures["complete"] is True and figures["failures"] == []
    assert figures["engines"] == {"stt": "pocketsphinx", "llm": "intent", "tts": "espeak"}
    for path in report.PATHS:
        samples = figures["paths"][path]["samples"]
        assert [s["key"] for s in samples] == [f"en-us|{c}" for c in COMMANDS[:2]], path
        for s in samples:
            timings = s["timings"]
            assert s["heard"] and s["reply"], s
            assert timings[report.V2V] > 0, s
            for part in report.PARTS:
                assert timings[part] is not None and timings[part] >= 0, (path, part, s)
            for part in report.V2V_PARTS:
                assert timings[report.V2V] >= timings[part], (path, part, s)
            # The edge's detector waits the configured silence before ending an utterance.
            assert timings[report.END_OF_SPEECH] >= settings.end_of_speech_silence_ms - 20
        v2v = figures["paths"][path]["summary"][report.V2V]
        assert v2v["n"] == 2 and 0 < v2v["p50"] <= v2v["p95"] <= v2v["p99"] <= v2v["max"]
    assert "create_todo" in figures["paths"]["direct"]["samples"][1]["tools"]
    assert "create_todo" in figures["paths"]["full"]["samples"][1]["tools"]
    overhead = figures["overhead"]
    assert len(overhead["pairs"]) == 2 and overhead["summary"][report.V2V]["n"] == 2
    assert "2 full-path turns, 2 direct, 2 pairs" in output
    assert plot_path.read_bytes().startswith(PNG_SIGNATURE)
    assert plot_path.stat().st_size > 10_000
    # Both paths created a todo; the bench removed what it made.
    assert "removed the 2 todo(s), reminder(s) and event(s) the bench created" in output
    async with session_scope(settings.effective_database_url) as session:
        assert await session.scalar(select(func.count()).select_from(Todo)) == 0


def test_unreachable_system_fails_fast_with_a_hint(capsys: object) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = run(["latency", "--url", url, "--calls", "1"])
    assert code == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert f"no Convonet at {url} — start it with `make run`" in err
