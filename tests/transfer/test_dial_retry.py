"""Dialling the agent is retried without ringing them twice.

FAULT_DIAL_DELAY_S holds the dial's first attempt open after it rang the agent and before it
recorded the leg, past the activity's timeout: the state a worker dying there leaves. The
retry must adopt the leg the first attempt created, not dial another.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from convonet import redis_keys
from convonet.agent_client import ScriptedAgent
from convonet.engines.agent_leg.base import DialRequest
from convonet.engines.agent_leg.twilio import TwilioAgentLeg
from convonet.screen_pop import CallerCard, ScreenPop
from convonet.seed import seed
from convonet.settings import Settings
from tests.standins.twilio_server import TwilioStandIn
from tests.system import running_system
from tests.transfer.helpers import (
    TWILIO_ACCOUNT,
    TWILIO_TOKEN,
    call_record,
    start_transfer,
    twilio_settings,
)
from workflows.transfer.workflow import STEP_TIMEOUT

# Past the dial's start-to-close timeout, so the server retries it while the first waits.
HOLD_S = STEP_TIMEOUT.total_seconds() + 3
RETRIED_S = HOLD_S + 20


async def _dial_attempts(client: Client, transfer_id: str) -> int:
    """The attempt that completed the transfer's dial activity."""
    history = await client.get_workflow_handle(transfer_id).fetch_history()
    dial_id = None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == "transfer.dial":
                dial_id = event.event_id
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id == dial_id:
                return started.attempt
    raise AssertionError("the dial activity never started")


async def test_twilio_dial_retry_adopts_the_call_already_ringing(settings: Settings) -> None:
    async with TwilioStandIn(TWILIO_ACCOUNT, TWILIO_TOKEN) as standin:
        settings = twilio_settings(settings, standin, fault_dial_delay_s=HOLD_S)
        await seed(settings)
        async with running_system(settings) as system:
            caller, conversation_id = await start_transfer(system.url, "sales")
            call = await standin.wait_for_call()
            assert await standin.ring(call) == 204

            # The retry finds the live call to the extension and records it as the leg.
            ringing = await caller.wait_for("transfer", timeout=RETRIED_S, state="ringing")
            record = await call_record(settings, conversation_id)
            assert record.leg_id == call.sid
            assert await _dial_attempts(system.client, ringing["transfer_id"]) == 2
            assert list(standin.calls) == [call.sid] and call.updates == []

            assert await standin.answer(call) == 204
            await caller.wait_for("transfer", state="bridged")
            assert await standin.hang_up(call) == 204
            await caller.wait_for("transfer", state="ended")
            assert list(standin.calls) == [call.sid]
            await caller.close()


async def test_builtin_dial_retry_rings_the_dashboard_once(settings: Settings) -> None:
    settings = settings.model_copy(update={"fault_dial_delay_s": HOLD_S})
    await seed(settings)
    async with running_system(settings) as system:
        agent = ScriptedAgent(system.url)
        await agent.login()
        await agent.wait_for("agent_state", state="ready")
        caller, conversation_id = await start_transfer(system.url, "sales")
        ring = (await agent.wait_for("ring"))["call"]

        # The retry publishes the ring again; the dashboard is shown it once.
        await caller.wait_for("transfer", timeout=RETRIED_S, state="ringing")
        assert await _dial_attempts(system.client, ring["transfer_id"]) == 2
        assert (await call_record(settings, conversation_id)).leg_id
        ack = await agent.request("answer", {"transfer_id": ring["transfer_id"]})
        assert ack["ok"], ack
        await caller.wait_for("transfer", state="bridged")
        assert [e["call"]["transfer_id"] for e in agent.events["ring"]] == [ring["transfer_id"]]
        assert (await agent.request("hang_up", {"transfer_id": ring["transfer_id"]}))["ok"]
        await caller.wait_for("transfer", state="ended")
        await caller.close()
        await agent.close()


def _dial_request(extension: str, conversation_id: str) -> DialRequest:
    pop = ScreenPop(
        transfer_id=f"{conversation_id}-transfer-1",
        call_record_id=1,
        conversation_id=conversation_id,
        department="sales",
        caller=CallerCard(name="Alice Martin"),
    )
    return DialRequest(
        transfer_id=pop.transfer_id,
        conversation_id=conversation_id,
        agent_id=1,
        extension=extension,
        ring_timeout_s=20,
        screen_pop=pop,
    )


async def test_twilio_finds_only_the_live_call_of_the_same_dial(settings: Settings) -> None:
    async with TwilioStandIn(TWILIO_ACCOUNT, TWILIO_TOKEN, auto_initiated=False) as standin:
        settings = twilio_settings(settings, standin)
        redis = redis_keys.client(settings.effective_redis_url)
        leg = TwilioAgentLeg(settings, redis)
        try:
            since = datetime.now(UTC)
            ours = _dial_request("2001", "conv-a")
            assert await leg.find_dialled(ours, since) is None

            ended = await leg.dial(ours)
            await asyncio.to_thread(leg.client.calls(ended).update, status="canceled")
            await leg.dial(_dial_request("2002", "conv-a"))  # another extension
            await leg.dial(_dial_request("2001", "conv-b"))  # another conversation
            assert await leg.find_dialled(ours, since) is None

            live = await leg.dial(ours)
            assert await leg.find_dialled(ours, since) == live
            later = datetime.now(UTC) + timedelta(minutes=1)  # dialled before this dial began
            assert await leg.find_dialled(ours, later) is None
            # SQLite hands back naive UTC timestamps.
            assert await leg.find_dialled(ours, since.replace(tzinfo=None)) == live
        finally:
            await leg.aclose()
            await redis.aclose()
