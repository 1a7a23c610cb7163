"""Twilio's way in: signed status callbacks become the transfer's leg events, and the
media stream of the agent's call is bridged to the caller.

Nothing unsigned changes anything: callbacks need a valid `X-Twilio-Signature`, and the
media websocket must present the one-time token of its TwiML for the call it belongs to."""

from __future__ import annotations

import json
import logging
import re

from fastapi import APIRouter, HTTPException, Request, Response, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode

from api.bridge.link import BridgeLink
from api.services import EdgeServices
from api.transfer_signals import signal_leg
from api.twilio.media import TwilioMediaTransport
from api.twilio.signature import is_from_twilio
from convonet import redis_keys
from convonet.db.models import CallRecord
from convonet.db.session import session_scope
from convonet.engines.agent_leg.twilio import media_token_key, token_digest
from workflows.transfer.models import LegStatus

log = logging.getLogger("convonet.api.twilio")
router = APIRouter(prefix="/twilio", tags=["twilio"])

# Twilio's CallStatus values, as the transfer understands them.
CALL_STATUS = {
    "ringing": LegStatus.RINGING,
    "in-progress": LegStatus.ANSWERED,
    "answered": LegStatus.ANSWERED,
    "completed": LegStatus.COMPLETED,
    "busy": LegStatus.BUSY,
    "no-answer": LegStatus.NO_ANSWER,
    "failed": LegStatus.FAILED,
    "canceled": LegStatus.COMPLETED,
}
TRANSFER_ID = r"^[A-Za-z0-9_.-]{1,120}$"
POLICY_VIOLATION = 1008
_CONSUME_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def _services(connection: Request | WebSocket) -> EdgeServices:
    services: EdgeServices = connection.app.state.services
    return services


# The form Twilio posts (the fields we read; it sends more), for the spec.
STATUS_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "CallSid": {"type": "string"},
                        "CallStatus": {"type": "string", "enum": [*CALL_STATUS, "queued"]},
                        "SequenceNumber": {"type": "string"},
                    },
                    "additionalProperties": {"type": "string"},
                }
            }
        },
    }
}


@router.post(
    "/status/{transfer_id}",
    status_code=204,
    openapi_extra=STATUS_FORM,
    responses={
        403: {"description": "Not signed by Twilio."},
        404: {"description": "No such transfer is going on (any more)."},
        503: {"description": "The transfer could not be told; Twilio should retry."},
    },
)
async def status_callback(transfer_id: str, request: Request) -> Response:
    services = _services(request)
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    if not is_from_twilio(services.settings, request, params):
        raise HTTPException(status_code=403, detail="Invalid Twilio signature.")
    if re.fullmatch(TRANSFER_ID, transfer_id) is None:
        raise HTTPException(status_code=404, detail="No such transfer.")
    status = CALL_STATUS.get(params.get("CallStatus", ""))
    if status is None:
        return Response(status_code=204)  # queued / initiated: nothing to tell
    call_sid = params.get("CallSid", "")[:64]
    # Each progress callback of a call has its own SequenceNumber (the signature covers it):
    # one already delivered is a replay, or Twilio resending one whose answer it lost, and
    # is not signalled again.
    sequence = params.get("SequenceNumber", "")[:12]
    seen = redis_keys.twilio_callback(call_sid, sequence) if sequence else None
    if seen and not await services.redis.set(
        seen, "1", nx=True, ex=redis_keys.TWILIO_CALLBACK_TTL_S
    ):
        log.info("status %s for %s already delivered: ignored", status, transfer_id)
        return Response(status_code=204)
    delivered = False
    try:
        await signal_leg(services, transfer_id, status, leg_id=call_sid)
        delivered = True
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            # Never started, or over: retrying (what a 5xx asks Twilio to do) cannot help.
            raise HTTPException(status_code=404, detail="No such transfer.") from None
        log.warning("status %s for %s not delivered: %s", status, transfer_id, error.message)
        # 5xx makes Twilio retry the callback.
        raise HTTPException(status_code=503, detail="Try again.") from None
    finally:
        if seen and not delivered:
            await services.redis.delete(seen)  # Twilio's retry of it must get through
    return Response(status_code=204)


@router.websocket("/media/{transfer_id}")
async def media_stream(websocket: WebSocket, transfer_id: str) -> None:
    services = _services(websocket)
    await websocket.accept()
    start = await _start_message(websocket)
    if start is None or not await _admitted(services, transfer_id, start):
        await websocket.close(code=POLICY_VIOLATION)
        return
    transport = TwilioMediaTransport(websocket, str(start.get("streamSid", "")))

    async def to_agent(pcm: bytes, sent_at: float) -> None:
        await transport.outbound(pcm)

    link = BridgeLink(services.streams, transfer_id, "agent", to_agent)
    await link.start()
    try:
        await signal_leg(services, transfer_id, LegStatus.BRIDGED, leg_id=_call_sid(start))
        while True:
            message = json.loads(await websocket.receive_text())
            event = message.get("event")
            if event == "media":
                link.send(transport.inbound(message["media"]["payload"]))
            elif event == "mark":
                transport.played()
            elif event == "stop":
                break
    except (WebSocketDisconnect, ValueError, KeyError, RPCError) as error:
        log.info("media stream of %s closed: %s", transfer_id, type(error).__name__)
    finally:
        await link.aclose()


async def _start_message(websocket: WebSocket) -> dict[str, object] | None:
    """Reads `connected` then `start`; anything else first is refused."""
    try:
        for _ in range(2):
            message = json.loads(await websocket.receive_text())
            if message.get("event") == "start":
                start = message.get("start")
                return start if isinstance(start, dict) else None
            if message.get("event") != "connected":
                return None
    except (WebSocketDisconnect, ValueError):
        return None
    return None


def _call_sid(start: dict[str, object]) -> str:
    return str(start.get("callSid", ""))[:64]


async def _admitted(services: EdgeServices, transfer_id: str, start: dict[str, object]) -> bool:
    """The stream's one-time token matches its TwiML and it is the call we placed."""
    if re.fullmatch(TRANSFER_ID, transfer_id) is None:
        return False
    parameters = start.get("customParameters")
    token = parameters.get("token") if isinstance(parameters, dict) else None
    if not isinstance(token, str) or not token:
        return False
    # Used up only by a match, atomically: a wrong guess cannot burn the real call's token.
    consumed = await services.redis.eval(
        _CONSUME_IF_EQUAL, 1, media_token_key(transfer_id), token_digest(token)
    )
    if consumed != 1:
        return False
    async with session_scope(services.settings.effective_database_url) as db:
        leg_id = await db.scalar(
            select(CallRecord.leg_id).where(CallRecord.transfer_id == transfer_id)
        )
    return bool(leg_id) and leg_id == _call_sid(start)
