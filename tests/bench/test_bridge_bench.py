"""`convonet bench bridge` end to end: numbered frames through a real transfer's bridge,
built-in (dashboard agent) and Twilio (the bench's own in-process system and Twilio peer).
Delay depends on the machine; only the figures' presence and consistency are checked."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from convonet.bench.bridge import BridgeOptions, run_bridge
from convonet.db.models import Agent, AgentState, CallRecord
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import free_port, running_system


def _check_direction(stats: dict[str, object]) -> None:
    delay = stats["delay_ms"]
    assert isinstance(delay, dict)
    assert stats["frames_sent"] == 150  # 3 s of 20 ms frames after the settling ones
    received = stats["frames_received"]
    assert isinstance(received, int) and received > 0, stats
    assert stats["frames_lost"] == stats["frames_sent"] - received
    assert delay["n"] == received
    assert 0 <= delay["p50"] <= delay["p95"] <= delay["p99"] <= delay["max"], delay
    assert stats["jitter_ms"] is not None and stats["jitter_rfc3550_ms"] is not None


async def _dana(settings: Settings) -> AgentState:
    async with session_scope(settings.effective_database_url) as db:
        agent = await db.scalar(select(Agent).where(Agent.login == "dana"))
        assert agent is not None
        return agent.state


async def test_builtin_bridge_delay_both_ways(settings: Settings, tmp_path: Path) -> None:
    await seed(settings)
    json_path = tmp_path / "bridge.json"
    printed: list[str] = []
    async with running_system(settings) as system:
        options = BridgeOptions(url=system.url, mode="builtin", seconds=3, json_path=json_path)
        code = await run_bridge(system.settings, options, out=printed.append)
    output = "\n".join(printed)
    assert code == 0, output
    figures = json.loads(json_path.read_text())
    assert figures["errors"] == {}
    builtin = figures["modes"]["builtin"]
    _check_direction(builtin["to_agent"])
    _check_direction(builtin["to_caller"])
    # The edge saw the same frames cross its Redis hop.
    assert builtin["edge_histogram"]["to_agent"]["frames"] > 0
    assert builtin["edge_histogram"]["to_caller"]["frames"] > 0
    assert "caller → agent" in output and "target (added delay p95 ≤ 60 ms)" in output
    # The call was disposed: the demo agent is ready for the next run.
    assert await _dana(settings) == AgentState.READY


async def test_twilio_bridge_delay_with_the_in_process_system(
    settings: Settings, tmp_path: Path
) -> None:
    await seed(settings)
    json_path = tmp_path / "bridge.json"
    printed: list[str] = []
    # No running system: Twilio mode brings its own, on the settings' database, Redis and
    # Temporal.
    options = BridgeOptions(
        url=f"http://127.0.0.1:{free_port()}", mode="twilio", seconds=3, json_path=json_path
    )
    code = await run_bridge(settings, options, out=printed.append)
    output = "\n".join(printed)
    assert code == 0, output
    twilio = json.loads(json_path.read_text())["modes"]["twilio"]
    _check_direction(twilio["to_agent"])
    _check_direction(twilio["to_caller"])
    assert twilio["twilio"]["marks_received"] > 0 and twilio["twilio"]["protocol_errors"] == []
    assert twilio["edge_histogram"]["to_agent"]["frames"] > 0
    async with session_scope(settings.effective_database_url) as db:
        record = await db.scalar(select(CallRecord))
        assert record is not None and record.state == "ended" and record.leg_id.startswith("CA")
    assert await _dana(settings) == AgentState.READY
