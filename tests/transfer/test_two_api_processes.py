"""Two API processes behind one address space, sharing Redis: the caller on one, the agent's
dashboard on the other. The ring, the answer, the transfer's progress and the audio both
ways all cross between the processes (through Redis), as behind a load balancer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from convonet.agent_client import ScriptedAgent
from convonet.call_client import ScriptedCaller
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import SAMPLE_RATE
from tests.processes import process_env, start, stop, until_healthy
from tests.system import free_port
from tests.transfer.helpers import call_record, dominant_frequency, tone


async def test_caller_and_agent_on_different_api_processes(
    settings: Settings, tmp_path: Path
) -> None:
    await seed(settings)
    ports = (free_port(), free_port())
    apis = [
        start("api", process_env(settings, port), tmp_path / f"api{port}.log") for port in ports
    ]
    worker = start("worker", process_env(settings, ports[0]), tmp_path / "worker.log")
    caller_url, agent_url = (f"http://127.0.0.1:{port}" for port in ports)
    try:
        await asyncio.gather(until_healthy(caller_url), until_healthy(agent_url))
        agent = ScriptedAgent(agent_url)
        await agent.login()
        await agent.wait_for("agent_state", state="ready")
        caller = ScriptedCaller(caller_url)
        status = await caller.connect()
        await caller.login("1234")
        reply = await caller.say("transfer me to an agent")
        assert reply["state"] == "transferring"

        ring = (await agent.wait_for("ring", timeout=30))["call"]
        assert ring["caller"]["name"] == "Alice Martin"
        await caller.wait_for("transfer", state="ringing")
        assert (await agent.request("answer", {"transfer_id": ring["transfer_id"]}))["ok"]
        bridged = await caller.wait_for("transfer", state="bridged", timeout=30)
        assert bridged["agent_name"] == "Dana Agent"
        print(f"\n    caller on API :{ports[0]}, dashboard on API :{ports[1]}: rang and bridged")

        await caller.open_mic()
        await asyncio.gather(caller.stream(tone(440, 1.0)), agent.stream(tone(1000, 1.0)))
        await asyncio.sleep(0.3)
        assert len(agent.heard) >= 0.5 * SAMPLE_RATE * 2
        assert len(caller.bridge_audio) >= 0.5 * SAMPLE_RATE * 2
        assert abs(dominant_frequency(bytes(agent.heard)) - 440) < 10
        assert abs(dominant_frequency(bytes(caller.bridge_audio)) - 1000) < 10
        print("    audio both ways across the two processes: 440 Hz to the agent, 1 kHz back")

        assert (await agent.request("hang_up", {"transfer_id": ring["transfer_id"]}))["ok"]
        await caller.wait_for("transfer", state="ended", timeout=30)
        said = await caller.wait_for("assistant", timeout=30)
        assert "Your call with Dana Agent has ended" in said["text"]
        back = await caller.say("what are my todos")
        assert back["state"] == "active"
        await caller.close()
        await agent.close()
        record = await call_record(settings, status["conversation_id"])
        assert record.state == "ended" and record.answered_at and record.bridged_at
        print("    hung up: the assistant took the caller back; the call record is complete")
    finally:
        for process in (*apis, worker):
            stop(process)
