"""`convonet bench load` end to end against a real system: two callers for a few seconds,
then a few idle conversations. Latency depends on the machine; only the shape is checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import func, select

from convonet.bench import report
from convonet.bench.callers import FAILURES
from convonet.bench.cli import run
from convonet.bench.load import LoadOptions, run_load
from convonet.bench.utterances import COMMANDS
from convonet.db.models import Todo
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import free_port, running_system


async def test_load_bench_reports_latency_failures_processes_and_history(
    settings: Settings, tmp_path: Path
) -> None:
    await seed(settings)
    json_path = tmp_path / "load.json"
    printed: list[str] = []
    async with running_system(settings) as system:
        options = LoadOptions(
            url=system.url,
            callers=2,
            duration_s=8,
            interval_s=1.0,
            voices=("en-us",),
            commands=COMMANDS[:3],
            json_path=json_path,
        )
        code = await run_load(system.settings, options, out=printed.append)

    output = "\n".join(printed)
    assert code == 0, output
    figures = json.loads(json_path.read_text())
    run = figures["run"]
    assert run["callers"] == 2 and run["logged_in"] == 2, output
    assert run["complete"] is True
    # Every turn either succeeded or is counted under one kind of failure.
    assert run["turns"] >= 2
    assert run["succeeded"] + run["failed"] == run["turns"]
    assert set(run["failures"]) == set(FAILURES)
    assert sum(run["failures"].values()) == run["failed"]
    v2v = run["parts"][report.V2V]
    assert v2v["n"] == run["succeeded"] >= 1, output
    assert 0 < v2v["p50"] <= v2v["p95"] <= v2v["p99"] <= v2v["max"]

    # The API (and the in-process worker) is this test's own process; Temporal is the dev server.
    processes = run["processes"]
    api = next(p for p in processes["processes"] if "api" in p["roles"])
    assert api["pid"] == os.getpid()
    assert api["samples"] >= 3 and api["rss_mb"]["max"] > 0
    assert any("temporal" in p["roles"] for p in processes["processes"])
    assert processes["total"]["rss_mb"]["mean"] >= api["rss_mb"]["mean"]
    assert processes["total"]["cpu_pct"]["mean"] is not None

    history = run["history"]
    assert history["conversations"] == 2 and history["measured"] >= 1
    assert history["events_per_turn"]["mean"] > 0 and history["bytes_per_turn"]["mean"] > 0
    for row in history["conversations_detail"]:
        assert row["status"] == "COMPLETED", row  # the callers hung up
    assert "voice-to-voice" in output and "Temporal history per turn" in output
    # The turns' todos were removed afterwards.
    async with session_scope(settings.effective_database_url) as session:
        assert await session.scalar(select(func.count()).select_from(Todo)) == 0


async def test_idle_conversations_report_memory(settings: Settings, tmp_path: Path) -> None:
    await seed(settings)
    json_path = tmp_path / "idle.json"
    printed: list[str] = []
    async with running_system(settings) as system:
        options = LoadOptions(url=system.url, idle=5, hold_s=2, json_path=json_path)
        code = await run_load(system.settings, options, out=printed.append)
    output = "\n".join(printed)
    assert code == 0, output
    idle = json.loads(json_path.read_text())["idle"]
    assert idle["opened"] == 5 and idle["failed"] == 0, output
    assert idle["baseline_rss_mb"] > 0 and idle["rss_mb"] > 0
    assert idle["projected_rss_mb_for_1000"] is not None
    assert "target (1000 idle conversations under 2048 MB)" in output


def test_unreachable_system_fails_fast_with_a_hint(capsys: object) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert run(["load", "--url", url, "--callers", "1", "--duration", "5"]) == 2
    assert run(["bridge", "--url", url, "--mode", "builtin", "--seconds", "1"]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert f"bench load: no Convonet at {url} — start it with `make run`" in err
    assert f"bench bridge (builtin): no Convonet at {url}" in err
    assert run(["bridge", "--mode", "sideways"]) == 2
