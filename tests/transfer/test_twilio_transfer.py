"""Twilio mode against a local Twilio that speaks its documented protocols: the call is
created through the real twilio SDK, status callbacks are signed, and the media stream
carries 8 kHz mu-law that the edge bridges to the caller's 16 kHz PCM."""

from __future__ import annotations

import asyncio
import json
import secrets
from urllib.parse import parse_qs, urlparse

import websockets
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from convonet.db.models import CallRecord
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from tests.standins.twilio_server import StandInCall, TwilioStandIn
from tests.system import running_system
from tests.transfer.helpers import (
    TWILIO_ACCOUNT,
    TWILIO_TOKEN,
    call_record,
    dominant_frequency,
    start_transfer,
    tone,
    twilio_settings,
)


async def _leg_signals(client: Client, transfer_id: str) -> list[str]:
    """The leg statuses signalled to the transfer workflow, in order."""
    history = await client.get_workflow_handle(transfer_id).fetch_history()
    return [
        json.loads(signaled.input.payloads[0].data)["status"]
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and (signaled := event.workflow_execution_signaled_event_attributes).signal_name
        == "leg_event"
    ]


async def test_twilio_call_is_signed_bridged_and_recorded(settings: Settings) -> None:
    async with TwilioStandIn(TWILIO_ACCOUNT, TWILIO_TOKEN) as standin:
        settings = twilio_settings(settings, standin)
        await seed(settings)
        async with running_system(settings) as system:
            caller, conversation_id = await start_transfer(system.url, "sales")
            call = await standin.wait_for_call()

            # The call rings the department's extension on the PBX, naming the conversation.
            uri = urlparse(call.to)
            assert call.to.startswith("sip:2001@pbx.example.test?")
            assert parse_qs(uri.query)["X-Convonet-Conversation"] == [conversation_id]
            assert call.from_ == "+15550001111"
            assert call.timeout == settings.transfer_ring_timeout_s
            assert call.twiml and "<Connect><Stream" in call.twiml
            assert f"{system.url.replace('http', 'ws')}/twilio/media/" in call.twiml
            assert call.status_callback and call.status_callback.startswith(system.url)
            assert {"ringing", "answered", "completed"} <= set(call.status_callback_events)

            # Unsigned or wrongly signed callbacks are refused and change nothing.
            ringing = standin.status_params(call, "ringing")
            assert await standin.post_callback(call, ringing, signature=None) == 403
            assert await standin.post_callback(call, ringing, signature="forged") == 403
            await asyncio.sleep(0.5)
            assert not caller.events["transfer"] or all(
                e["state"] != "ringing" for e in caller.events["transfer"]
            )
            assert (await call_record(settings, conversation_id)).ringing_at is None

            assert await standin.ring(call) == 204
            ringing_event = await caller.wait_for("transfer", state="ringing")
            transfer_id = ringing_event["transfer_id"]
            assert await _leg_signals(system.client, transfer_id) == ["ringing"]

            # A delivered callback replayed, however often, is not signalled again.
            delivered = call.callbacks[-1].params
            assert delivered["CallStatus"] == "ringing"
            replays = [standin.post_callback(call, delivered) for _ in range(20)]
            assert set(await asyncio.gather(*replays)) == {204}
            assert await _leg_signals(system.client, transfer_id) == ["ringing"]

            assert await standin.answer(call) == 204
            bridged = await caller.wait_for("transfer", state="bridged")
            assert bridged["agent_name"] == "Dana Agent"

            # Audio both ways through the mu-law bridge.
            await caller.open_mic()
            await asyncio.gather(
                caller.stream(tone(440, 1.5)), standin.send_audio(call, tone(1000, 1.5, rate=8000))
            )
            await asyncio.sleep(0.5)
            heard_by_agent = standin.received_pcm(call)
            assert len(heard_by_agent) >= 0.75 * 8000 * 2
            assert abs(dominant_frequency(heard_by_agent, rate=8000) - 440) < 10
            assert len(caller.bridge_audio) >= 0.75 * 16000 * 2
            assert abs(dominant_frequency(bytes(caller.bridge_audio)) - 1000) < 10
            assert call.marks_received and not call.protocol_errors

            assert await standin.hang_up(call) == 204
            await caller.wait_for("transfer", state="ended")
            said = await caller.wait_for("assistant")
            assert "Your call with Dana Agent has ended" in said["text"]
            record = await call_record(settings, conversation_id)
            assert record.state == "ended" and record.leg_id == call.sid
            assert all(
                (record.dialing_at, record.ringing_at, record.answered_at, record.bridged_at)
            )
            assert record.ended_at is not None
            await caller.close()


async def test_media_stream_needs_the_calls_one_time_token(settings: Settings) -> None:
    async with TwilioStandIn(TWILIO_ACCOUNT, TWILIO_TOKEN) as standin:
        settings = twilio_settings(settings, standin)
        await seed(settings)
        async with running_system(settings) as system:
            caller, _ = await start_transfer(system.url, "support")
            call = await standin.wait_for_call()
            media_url = call.twiml.split('url="')[1].split('"')[0] if call.twiml else ""

            async def attempt(token: str, call_sid: str) -> int | None:
                async with websockets.connect(media_url) as ws:
                    await ws.send(json.dumps({"event": "connected", "protocol": "Call"}))
                    start = {
                        "streamSid": "MZ" + secrets.token_hex(16),
                        "callSid": call_sid,
                        "customParameters": {"token": token},
                    }
                    await ws.send(json.dumps({"event": "start", "start": start}))
                    try:
                        await asyncio.wait_for(ws.recv(), timeout=5)
                    except websockets.ConnectionClosed as closed:
                        return closed.rcvd.code if closed.rcvd else None
                    return None

            assert await attempt("not-the-token", call.sid) == 1008
            # The real call still connects: a wrong guess did not use up its token...
            assert await standin.ring(call) == 204
            assert await standin.answer(call) == 204
            await caller.wait_for("transfer", state="bridged")
            # ...and once used, the token cannot be replayed.
            token = call.custom_parameters["token"]
            assert await attempt(token, call.sid) == 1008
            await standin.hang_up(call)
            await caller.wait_for("transfer", state="ended")
            await caller.close()


async def test_busy_and_ring_timeout(settings: Settings) -> None:
    async with TwilioStandIn(TWILIO_ACCOUNT, TWILIO_TOKEN) as standin:
        settings = twilio_settings(settings, standin, transfer_ring_timeout_s=5)
        await seed(settings)
        async with running_system(settings) as system:
            caller, conversation_id = await start_transfer(system.url, "billing")
            call: StandInCall = await standin.wait_for_call(timeout=20)
            assert await standin.finish(call, "busy") == 204
            failed = await caller.wait_for("transfer", state="failed")
            assert failed["reason"] == "busy"
            said = await caller.wait_for("assistant")
            assert "busy" in said["text"] and "take a message" in said["text"]

            # Nobody answers the second try: the workflow gives up and cancels the call.
            await caller.say("try again")
            second = await standin.wait_for_call(timeout=20)
            assert await standin.ring(second) == 204
            timed_out = await caller.wait_for(
                "transfer", timeout=20, where=lambda e: e["reason"] == "no-answer", state="failed"
            )
            assert timed_out["department"] == "billing"
            await standin.wait_until(lambda: second.status == "canceled", timeout=20)
            async with session_scope(settings.effective_database_url) as db:
                outcomes = list(
                    await db.scalars(
                        select(CallRecord.outcome)
                        .where(CallRecord.conversation_id == conversation_id)
                        .order_by(CallRecord.id)
                    )
                )
            assert outcomes == ["busy", "no-answer"]
            await caller.close()
