"""A transfer while the worker dies: kill -9 as the transfer starts, and again while the
agent's phone rings (the agent answers with no worker running). New workers take over; the
transfer is bridged, or fails cleanly with the caller back at the assistant, never hangs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select

from convonet.agent_client import ScriptedAgent
from convonet.call_client import ScriptedCaller
from convonet.db.models import Agent, CallRecord
from convonet.db.session import session_scope
from convonet.speech.audio import SAMPLE_BYTES, SAMPLE_RATE
from tests.chaos.harness import CASE_S, Stack, kill9, say
from tests.system import logged_in_caller
from tests.transfer.helpers import call_record, tone

# A transfer activity running on a killed worker is retried after its start-to-close timeout
# (workflows/transfer/workflow.py, STEP_TIMEOUT) and a new worker's start: a ring can wait.
RING_S = 60.0
SETTLE_S = 60.0


async def test_transfer_survives_worker_kills(stack: Stack) -> None:
    """A transfer to an agent while the worker is killed twice."""
    async with asyncio.timeout(CASE_S + RING_S):
        doomed = await stack.start_worker()
        say(f"started worker (pid {doomed.pid})")
        agent = ScriptedAgent(stack.url)
        await agent.login()
        await agent.wait_for("agent_state", state="ready")
        say("agent dana logged in to the dashboard, ready")
        caller, conversation_id = await logged_in_caller(stack.url)
        reply = await caller.say("transfer me to sales")
        assert reply["state"] == "transferring", reply
        pid = await kill9(doomed)
        killed = time.monotonic()
        record = await call_record(stack.settings, conversation_id)
        say(
            f"caller asked for sales ({reply['assistant']!r}); killed worker (pid {pid}) as "
            f"the transfer started (call record: {record.state})"
        )

        second = await stack.start_worker()
        say(f"started a new worker (pid {second.pid})")
        ring = (await agent.wait_for("ring", timeout=RING_S))["call"]
        transfer_id = ring["transfer_id"]
        record = await call_record(stack.settings, conversation_id)
        say(
            f"the agent's dashboard rang {time.monotonic() - killed:.1f} s after the kill "
            f"(call record: {record.state})"
        )
        pid = await kill9(second)
        say(f"killed worker (pid {pid}) while the agent's phone rang")
        ack = await agent.request("answer", {"transfer_id": transfer_id})
        answered = time.monotonic()
        say(f"the agent answered with no worker running: ok={ack['ok']}")
        third = await stack.start_worker()
        say(f"started a new worker (pid {third.pid})")

        outcome = await _settled(caller)
        record = await call_record(stack.settings, conversation_id)
        records = await _records(stack, conversation_id)
        rings = [e["call"]["transfer_id"] for e in agent.events["ring"]]
        say(
            f"transfer settled {time.monotonic() - answered:.1f} s after the answer: "
            f"{outcome['state']} {outcome.get('reason') or ''}".rstrip()
            + f"; call records: {records} (state {record.state})"
        )
        # A dial killed after it rang publishes the ring again when retried: the dashboard
        # is shown it once all the same.
        say(f"rings shown to the agent: {len(rings)}, for this transfer")
        assert records == 1 and rings == [transfer_id]
        if outcome["state"] == "bridged":
            assert ack["ok"], ack
            assert record.state == "bridged" and record.answered_at and record.bridged_at
            assert await _agent_state(stack) == "on-call"
            await caller.open_mic()
            await asyncio.gather(caller.stream(tone(440, 0.6)), agent.stream(tone(1000, 0.6)))
            await asyncio.sleep(0.3)
            agent_ms = len(agent.heard) // SAMPLE_BYTES * 1000 // SAMPLE_RATE
            caller_ms = len(caller.bridge_audio) // SAMPLE_BYTES * 1000 // SAMPLE_RATE
            say(
                f"bridged: the agent is on the call; of 600 ms each way the agent heard "
                f"{agent_ms} ms, the caller {caller_ms} ms"
            )
            assert agent_ms >= 300 and caller_ms >= 300
            hung_up = await agent.request("hang_up", {"transfer_id": transfer_id})
            assert hung_up["ok"], hung_up
            await caller.wait_for("transfer", timeout=SETTLE_S, state="ended")
        else:
            assert record.state == "failed"
        said = await caller.wait_for("assistant", timeout=SETTLE_S)
        say(f"the assistant is back: {said['text']!r}")
        back = await caller.say("what are my todos")
        say(f"next turn: {back['assistant']!r} (state {back['state']})")
        assert back["state"] == "active"
        await caller.close()
        await agent.close()


async def _settled(caller: ScriptedCaller) -> dict[str, Any]:
    """The transfer's first settled state the caller was told of: bridged, failed or ended."""
    event = await caller.wait_for(
        "transfer", timeout=RING_S, where=lambda e: e["state"] in ("bridged", "failed", "ended")
    )
    return event


async def _records(stack: Stack, conversation_id: str) -> int:
    async with session_scope(stack.settings.effective_database_url) as db:
        count = await db.scalar(
            select(func.count()).where(CallRecord.conversation_id == conversation_id)
        )
    return int(count or 0)


async def _agent_state(stack: Stack) -> str:
    async with session_scope(stack.settings.effective_database_url) as db:
        agent = await db.scalar(select(Agent).where(Agent.login == "dana"))
        assert agent is not None
        return agent.state.value
