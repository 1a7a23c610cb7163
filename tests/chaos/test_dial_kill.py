"""kill -9 of the worker between ringing the agent and recording the leg. In Twilio mode,
Twilio is already calling the agent's extension when the worker dies: the retried dial on a
new worker adopts that call, and Twilio is never asked for a second one. In built-in mode the
dashboard is already ringing: the retry rings again, and the dashboard is shown it once."""

from __future__ import annotations

import asyncio
import time

from convonet.agent_client import ScriptedAgent
from convonet.speech.audio import SAMPLE_BYTES, SAMPLE_RATE
from tests.chaos.harness import CASE_S, Stack, hold_line, kill9, say
from tests.standins.twilio_server import TwilioStandIn
from tests.transfer.helpers import (
    TWILIO_ACCOUNT,
    TWILIO_TOKEN,
    call_record,
    start_transfer,
    tone,
)

HOLD_S = 60.0  # longer than the case waits for the kill
RETRY_S = 60.0  # the dead attempt's 10 s timeout, a worker start, then the retry


async def test_killed_between_dial_and_record(stack: Stack) -> None:
    """kill -9 the worker once Twilio is calling the agent, before the call is recorded."""
    async with asyncio.timeout(CASE_S), TwilioStandIn(TWILIO_ACCOUNT, TWILIO_TOKEN) as twilio:
        await stack.configure(
            TWILIO_ACCOUNT_SID=TWILIO_ACCOUNT,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            TWILIO_FROM_NUMBER="+15550001111",
            TWILIO_API_BASE_URL=twilio.base_url,
            FUSIONPBX_DOMAIN="pbx.example.test",
        )
        doomed = await stack.start_worker(fault_dial_delay_s=HOLD_S)
        say(f"API restarted in Twilio mode; started worker (pid {doomed.pid})")
        caller, conversation_id = await start_transfer(stack.url, "sales")
        call = await twilio.wait_for_call(timeout=30)
        await stack.wait_log(doomed, hold_line("the dial"), timeout=30)
        assert await twilio.ring(call) == 204
        pid = await kill9(doomed)
        killed = time.monotonic()
        record = await call_record(stack.settings, conversation_id)
        say(
            f"Twilio is calling {call.to.split('?')[0]} ({call.sid}, ringing); killed worker "
            f"(pid {pid}) before it recorded the call (leg recorded: {record.leg_id!r})"
        )
        assert not record.leg_id

        second = await stack.start_worker()
        say(f"started a new worker (pid {second.pid})")
        await caller.wait_for("transfer", timeout=RETRY_S, state="ringing")
        record = await call_record(stack.settings, conversation_id)
        adopted = "adopted leg" in stack.log(second)
        say(
            f"the caller was told 'ringing' {time.monotonic() - killed:.1f} s after the kill; "
            f"leg recorded: {record.leg_id}; the new worker logged adopting it: {adopted}"
        )
        say(f"calls Twilio was asked to make: {len(twilio.calls)}")
        assert record.leg_id == call.sid and adopted and list(twilio.calls) == [call.sid]

        assert await twilio.answer(call) == 204
        await caller.wait_for("transfer", timeout=30, state="bridged")
        await caller.open_mic()
        await asyncio.gather(
            caller.stream(tone(440, 0.6)), twilio.send_audio(call, tone(1000, 0.6, rate=8000))
        )
        await asyncio.sleep(0.3)
        agent_ms = len(twilio.received_pcm(call)) // SAMPLE_BYTES * 1000 // 8000
        caller_ms = len(caller.bridge_audio) // SAMPLE_BYTES * 1000 // SAMPLE_RATE
        say(
            f"bridged on that call: of 600 ms each way the agent heard {agent_ms} ms, the caller "
            f"{caller_ms} ms"
        )
        assert agent_ms >= 300 and caller_ms >= 300
        assert await twilio.hang_up(call) == 204
        await caller.wait_for("transfer", timeout=30, state="ended")
        said = await caller.wait_for("assistant", timeout=30)
        back = await caller.say("what are my todos")
        say(f"the agent hung up; the assistant is back: {said['text']!r}")
        say(f"next turn: {back['assistant']!r} (state {back['state']})")
        assert back["state"] == "active" and list(twilio.calls) == [call.sid]
        await caller.close()


async def test_killed_between_ring_and_record(stack: Stack) -> None:
    """kill -9 the worker once the dashboard rings, before the ring is recorded."""
    async with asyncio.timeout(CASE_S):
        doomed = await stack.start_worker(fault_dial_delay_s=HOLD_S)
        agent = ScriptedAgent(stack.url)
        await agent.login()
        await agent.wait_for("agent_state", state="ready")
        say(f"started worker (pid {doomed.pid}); agent dana ready on the dashboard")
        caller, conversation_id = await start_transfer(stack.url, "sales")
        ring = (await agent.wait_for("ring", timeout=30))["call"]
        await stack.wait_log(doomed, hold_line("the dial"), timeout=30)
        pid = await kill9(doomed)
        killed = time.monotonic()
        say(f"the dashboard rang; killed worker (pid {pid}) before it recorded the ring")

        second = await stack.start_worker()
        say(f"started a new worker (pid {second.pid})")
        await caller.wait_for("transfer", timeout=RETRY_S, state="ringing")
        record = await call_record(stack.settings, conversation_id)
        say(
            f"the caller was told 'ringing' {time.monotonic() - killed:.1f} s after the kill "
            f"(leg recorded: {record.leg_id})"
        )
        ack = await agent.request("answer", {"transfer_id": ring["transfer_id"]})
        await caller.wait_for("transfer", timeout=30, state="bridged")
        rings = [e["call"]["transfer_id"] for e in agent.events["ring"]]
        say(
            f"the agent answered (ok={ack['ok']}) and is bridged; rings shown to them: {len(rings)}"
        )
        assert ack["ok"] and record.leg_id and rings == [ring["transfer_id"]]
        assert (await agent.request("hang_up", {"transfer_id": ring["transfer_id"]}))["ok"]
        await caller.wait_for("transfer", timeout=30, state="ended")
        await caller.wait_for("assistant", timeout=30)
        back = await caller.say("what are my todos")
        say(f"the agent hung up; next turn: {back['assistant']!r} (state {back['state']})")
        assert back["state"] == "active"
        await caller.close()
        await agent.close()
