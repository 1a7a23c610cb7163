"""The agent dashboard's Socket.IO namespace: availability, rings, the built-in softphone
(answer, decline, hold, mute, hang up) and its audio.

The login cookie authenticates the connection. Every call action is checked against the
call record: an agent can only act on a call offered to them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import socketio
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from temporalio.service import RPCError

from api.agent.protocol import AGENT_NAMESPACE, CallIn, SetStateIn, ToggleIn
from api.agent.sessions import AgentSessions, token_from_cookie_header
from api.bridge.link import BridgeLink
from api.events_hub import EventHub
from api.protocol import LIFECYCLE_EVENTS, Ack, AudioFrameIn, ErrorOut, EventNamespace
from api.services import EdgeServices
from api.transfer_signals import signal_leg
from api.voice.ingest import TokenBucket
from convonet import events
from convonet.db.models import Agent, AgentState, CallRecord, Department
from convonet.db.session import session_scope
from convonet.services.transfers import LIVE_STATES
from convonet.speech.audio import SAMPLE_RATE
from workflows.transfer.models import LegStatus

log = logging.getLogger("convonet.api.agent")
FRAME_BYTES = 640

# How long a refused socket stays open for its ack to leave.
ACK_GRACE_S = 0.2


@dataclass
class _Call:
    transfer_id: str
    conversation_id: str
    department: str
    agent_name: str
    link: BridgeLink | None = None
    muted: bool = False
    held: bool = False
    frames_out: int = 0


@dataclass
class _Agent:
    agent_id: int
    token: str
    unsubscribe: Any
    call: _Call | None = None
    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(100))
    seq: int = 0
    # The transfer this dashboard was last rung for: a dial retried after its worker died
    # publishes the same ring again, and the agent must see it once.
    rung: str | None = None


def _ack(data: BaseModel | dict[str, Any] | None = None) -> dict[str, Any]:
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else (data or {})
    return Ack(ok=True, data=payload).model_dump(mode="json")


def _fail(code: str, message: str) -> dict[str, Any]:
    return Ack(ok=False, error=ErrorOut(code=code, message=message)).model_dump(mode="json")  # type: ignore[arg-type]


class AgentNamespace(EventNamespace):
    def __init__(self, services: EdgeServices, hub: EventHub) -> None:
        super().__init__(AGENT_NAMESPACE)
        self.services = services
        self.hub = hub
        self.sessions = AgentSessions(services.settings, services.redis)
        self.agents: dict[str, _Agent] = {}
        self._closing: set[asyncio.Task[None]] = set()

    # ---- connection -------------------------------------------------------------------

    async def trigger_event(self, event: Any, *args: Any) -> Any:
        agent = self.agents.get(args[0]) if args else None
        # A logout or an expired login (noticed by any API process) ends the socket too. The
        # audio frames of a call in progress (50 a second) are not checked one by one.
        checked = isinstance(event, str) and event not in LIFECYCLE_EVENTS
        if agent is not None and checked and event != "audio_frame":
            if await self.sessions.get(agent.token) is None:
                self._disconnect_soon(args[0])
                return _fail("not_authenticated", "Your session has ended. Please log in again.")
        return await super().trigger_event(event, *args)

    def _disconnect_soon(self, sid: str) -> None:
        """Ends the socket once the refusal's ack has left (a disconnect would drop it)."""

        async def later() -> None:
            await asyncio.sleep(ACK_GRACE_S)
            await self.disconnect(sid)

        task = asyncio.create_task(later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = token_from_cookie_header(environ.get("HTTP_COOKIE"))
        session = await self.sessions.get(token)
        if session is None or token is None:
            raise socketio.exceptions.ConnectionRefusedError("not logged in")

        async def forward(event: events.Event) -> None:
            await self._on_event(sid, event)

        unsubscribe = self.hub.add(events.agent_channel(session.agent_id), forward)
        self.agents[sid] = _Agent(agent_id=session.agent_id, token=token, unsubscribe=unsubscribe)
        agent = await self._load(session.agent_id)
        await self.emit("agent_state", {"state": agent.state.value if agent else "offline"}, to=sid)

    async def on_disconnect(self, sid: str, *args: Any) -> None:
        state = self.agents.pop(sid, None)
        if state is None:
            return
        state.unsubscribe()
        call = state.call
        await self._drop_call(state)
        if call is not None:
            # The agent's phone is gone (tab closed, network lost): the caller must not be
            # left listening to silence, so the call ends and the assistant takes over.
            await self._signal(call.transfer_id, LegStatus.COMPLETED)

    # ---- availability -----------------------------------------------------------------

    async def on_set_state(self, sid: str, data: Any = None) -> dict[str, Any]:
        agent = self.agents.get(sid)
        if agent is None:
            return _fail("not_authenticated", "Please log in.")
        try:
            request = SetStateIn.model_validate(data)
        except ValidationError:
            return _fail("bad_request", 'Send {"state": "ready"} or {"state": "not-ready"}.')
        async with session_scope(self.services.settings.effective_database_url) as db:
            row = await db.get(Agent, agent.agent_id, with_for_update=True)
            if row is None:
                return _fail("not_authenticated", "Please log in.")
            if row.state == AgentState.ON_CALL:
                return _fail("rejected", "Finish the call first.")
            row.state = AgentState(request.state)
        await events.publish(
            self.services.redis,
            events.agent_channel(agent.agent_id),
            events.AgentStateEvent(state=request.state),
        )
        return _ack({"state": request.state})

    # ---- the built-in softphone -------------------------------------------------------

    async def on_answer(self, sid: str, data: Any = None) -> dict[str, Any]:
        agent, request, failure = self._call_request(sid, data, CallIn)
        if failure:
            return failure
        assert agent is not None and request is not None
        if agent.call is not None:
            return _fail("rejected", "You are already on a call.")
        record = await self._offered(agent.agent_id, request.transfer_id, ("dialing", "ringing"))
        if record is None:
            return _fail("rejected", "That call is no longer ringing.")
        call = _Call(
            transfer_id=request.transfer_id,
            conversation_id=record.conversation_id,
            department=await self._department(record),
            agent_name=(await self._load(agent.agent_id)).name,  # type: ignore[union-attr]
        )

        async def to_dashboard(pcm: bytes, sent_at: float) -> None:
            if call.held:
                return
            agent.seq += 1
            await self.emit("audio_in", {"seq": agent.seq, "rate": SAMPLE_RATE, "pcm": pcm}, to=sid)

        call.link = BridgeLink(self.services.streams, request.transfer_id, "agent", to_dashboard)
        agent.call = call
        try:
            await call.link.start()
            await signal_leg(self.services, request.transfer_id, LegStatus.ANSWERED)
            await signal_leg(self.services, request.transfer_id, LegStatus.BRIDGED)
        except (RPCError, TimeoutError) as error:
            log.warning("answering %s failed: %s", request.transfer_id, error)
            await self._drop_call(agent)
            return _fail("unavailable", "The call could not be connected; try again.")
        return _ack({"transfer_id": request.transfer_id})

    async def on_decline(self, sid: str, data: Any = None) -> dict[str, Any]:
        agent, request, failure = self._call_request(sid, data, CallIn)
        if failure:
            return failure
        assert agent is not None and request is not None
        record = await self._offered(agent.agent_id, request.transfer_id, ("dialing", "ringing"))
        if record is None:
            return _fail("rejected", "That call is no longer ringing.")
        return await self._signal(request.transfer_id, LegStatus.DECLINED)

    async def on_hang_up(self, sid: str, data: Any = None) -> dict[str, Any]:
        agent, request, failure = self._call_request(sid, data, CallIn)
        if failure:
            return failure
        assert agent is not None and request is not None
        if agent.call is None or agent.call.transfer_id != request.transfer_id:
            return _fail("rejected", "You are not on that call.")
        await self._drop_call(agent)
        return await self._signal(request.transfer_id, LegStatus.COMPLETED)

    async def on_hold(self, sid: str, data: Any = None) -> dict[str, Any]:
        agent, request, failure = self._call_request(sid, data, ToggleIn)
        if failure:
            return failure
        assert agent is not None and isinstance(request, ToggleIn)
        call = agent.call
        if call is None or call.transfer_id != request.transfer_id:
            return _fail("rejected", "You are not on that call.")
        call.held = request.on
        await events.publish(
            self.services.redis,
            events.conversation_channel(call.conversation_id),
            events.TransferEvent(
                transfer_id=call.transfer_id,
                state="bridged",
                department=call.department,
                agent_name=call.agent_name,
                on_hold=request.on,
            ),
        )
        return _ack({"on": request.on})

    async def on_mute(self, sid: str, data: Any = None) -> dict[str, Any]:
        agent, request, failure = self._call_request(sid, data, ToggleIn)
        if failure:
            return failure
        assert agent is not None and isinstance(request, ToggleIn)
        if agent.call is None or agent.call.transfer_id != request.transfer_id:
            return _fail("rejected", "You are not on that call.")
        agent.call.muted = request.on
        return _ack({"on": request.on})

    async def on_audio_frame(self, sid: str, data: Any = None) -> None:
        agent = self.agents.get(sid)
        call = agent.call if agent else None
        if agent is None or call is None or call.link is None:
            return  # no call: stray frames after a hang-up are dropped silently
        try:
            frame = AudioFrameIn.model_validate(data)
        except ValidationError:
            return
        if frame.rate != SAMPLE_RATE or len(frame.pcm) != FRAME_BYTES:
            return
        if call.muted or call.held or not agent.bucket.take():
            return
        call.frames_out += 1
        call.link.send(frame.pcm)

    # ---- events from the worker -------------------------------------------------------

    async def _on_event(self, sid: str, event: events.Event) -> None:
        agent = self.agents.get(sid)
        if agent is None:
            return
        if isinstance(event, events.RingEvent):
            if agent.rung != event.call.transfer_id:
                agent.rung = event.call.transfer_id
                await self.emit("ring", {"call": event.call.model_dump(mode="json")}, to=sid)
            # The dashboard is showing the call: for the transfer, the phone is ringing.
            try:
                await signal_leg(self.services, event.call.transfer_id, LegStatus.RINGING)
            except RPCError as error:
                log.warning("ringing of %s not signalled: %s", event.call.transfer_id, error)
        elif isinstance(event, events.CallStateEvent):
            if (
                event.state in ("ended", "failed")
                and agent.call is not None
                and agent.call.transfer_id == event.transfer_id
            ):
                await self._drop_call(agent)
            await self.emit("call_state", event.model_dump(exclude={"type"}), to=sid)
        elif isinstance(event, events.AgentStateEvent):
            await self.emit("agent_state", {"state": event.state}, to=sid)

    # ---- helpers ----------------------------------------------------------------------

    def _call_request(
        self, sid: str, data: Any, model: type[CallIn]
    ) -> tuple[_Agent | None, CallIn | None, dict[str, Any] | None]:
        agent = self.agents.get(sid)
        if agent is None:
            return None, None, _fail("not_authenticated", "Please log in.")
        try:
            return agent, model.model_validate(data), None
        except ValidationError:
            return agent, None, _fail("bad_request", 'Send {"transfer_id": "..."}.')

    async def _offered(
        self, agent_id: int, transfer_id: str, states: tuple[str, ...] = LIVE_STATES
    ) -> CallRecord | None:
        async with session_scope(self.services.settings.effective_database_url) as db:
            record: CallRecord | None = await db.scalar(
                select(CallRecord).where(
                    CallRecord.transfer_id == transfer_id,
                    CallRecord.agent_id == agent_id,
                    CallRecord.state.in_(states),
                )
            )
            return record

    async def _department(self, record: CallRecord) -> str:
        if record.department_id is None:
            return ""
        async with session_scope(self.services.settings.effective_database_url) as db:
            department = await db.get(Department, record.department_id)
            return department.name if department else ""

    async def _load(self, agent_id: int) -> Agent | None:
        async with session_scope(self.services.settings.effective_database_url) as db:
            return await db.get(Agent, agent_id)

    async def _signal(self, transfer_id: str, status: LegStatus) -> dict[str, Any]:
        try:
            await signal_leg(self.services, transfer_id, status)
        except RPCError as error:
            log.warning("signalling %s to %s failed: %s", status, transfer_id, error)
            return _fail("unavailable", "The call service is unavailable; try again.")
        return _ack({"transfer_id": transfer_id})

    async def _drop_call(self, agent: _Agent) -> None:
        call, agent.call = agent.call, None
        if call is not None and call.link is not None:
            await call.link.aclose()
