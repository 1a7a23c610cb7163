"""The transfer's I/O: routing to an agent, dialling and hanging up the agent leg, keeping
the call record current and telling the caller's page and the agent's dashboard."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from activities import faults, runtime
from convonet import events
from convonet.agent.summary import summarize
from convonet.db.models import Agent, CallRecord
from convonet.db.session import session_scope
from convonet.engines.agent_leg.base import DialRequest
from convonet.screen_pop import TranscriptLine
from convonet.services import transfers
from workflows.transfer.models import RouteResult, TransferInput, TransferState


class RecordInput(BaseModel):
    transfer_id: str
    conversation_id: str
    call_record_id: int
    department: str
    state: TransferState
    agent_id: int | None = None
    agent_name: str = ""
    leg_id: str = ""
    # Failure reason, or why the call ended.
    reason: str = ""


class DialInput(BaseModel):
    transfer_id: str
    conversation_id: str
    call_record_id: int
    agent_id: int
    extension: str
    ring_timeout_s: int


class HangUpInput(BaseModel):
    transfer_id: str
    leg_id: str
    agent_id: int


class AnnounceInput(BaseModel):
    conversation_id: str
    text: str
    turn: int
    turn_key: str


@activity.defn(name="transfer.route")
async def route_transfer(request: TransferInput) -> RouteResult:
    """Saves the hand-off for the agent and picks the ready agent to ring."""
    rt = runtime.current()
    transcript = [TranscriptLine(role=line.role, text=line.text) for line in request.transcript]
    summary = summarize(request.caller.name, request.department, request.reason, transcript)
    async with session_scope(rt.settings.effective_database_url) as session:
        await transfers.save_hand_off(
            session, request.call_record_id, request.transfer_id, summary, transcript
        )
        agent = await transfers.route(session, request.department)
        if agent is None:
            return RouteResult()
        return RouteResult(agent_id=agent.id, agent_name=agent.name, extension=agent.sip_extension)


@activity.defn(name="transfer.record")
async def record_transfer(request: RecordInput) -> None:
    """Moves the call record to the new state (stamping its time once) and tells the
    caller's page and the agent's dashboard."""
    rt = runtime.current()
    async with session_scope(rt.settings.effective_database_url) as session:
        record = await transfers.record_state(
            session,
            request.call_record_id,
            request.state.value,
            agent_id=request.agent_id,
            leg_id=request.leg_id or None,
            outcome=request.reason if request.state == TransferState.FAILED else "",
            transfer_id=request.transfer_id,
        )
        agent_id = record.agent_id
        agent_state = None
        if agent_id is not None:
            agent = await session.get(Agent, agent_id)
            agent_state = agent.state.value if agent else None
    await events.publish(
        rt.redis,
        events.conversation_channel(request.conversation_id),
        events.TransferEvent(
            transfer_id=request.transfer_id,
            state=request.state.value,
            department=request.department,
            agent_name=request.agent_name,
            reason=request.reason,
        ),
    )
    if agent_id is not None and request.state != TransferState.DIALING:
        channel = events.agent_channel(agent_id)
        await events.publish(
            rt.redis,
            channel,
            events.CallStateEvent(
                transfer_id=request.transfer_id, state=request.state.value, reason=request.reason
            ),
        )
        if agent_state is not None:
            await events.publish(rt.redis, channel, events.AgentStateEvent(state=agent_state))


@activity.defn(name="transfer.dial")
async def dial_agent(request: DialInput) -> str:
    """Rings the agent once: a retry returns the leg an earlier attempt recorded, or adopts
    the live leg it dialled before its worker died, and dials only when there is neither."""
    rt = runtime.current()
    async with session_scope(rt.settings.effective_database_url) as session:
        record = await session.get(CallRecord, request.call_record_id)
        if record is None:
            raise LookupError(f"call record {request.call_record_id} does not exist")
        if record.leg_id:
            return record.leg_id
        pop = await transfers.screen_pop(session, record, request.ring_timeout_s)
        dialling_since = record.dialing_at
    dial = DialRequest(
        transfer_id=request.transfer_id,
        conversation_id=request.conversation_id,
        agent_id=request.agent_id,
        extension=request.extension,
        ring_timeout_s=request.ring_timeout_s,
        screen_pop=pop,
    )
    attempt = activity.info().attempt
    leg_id = None
    if attempt > 1 and dialling_since is not None:
        leg_id = await rt.agent_leg.find_dialled(dial, dialling_since)
        if leg_id:
            activity.logger.warning("adopted leg %s that an earlier attempt dialled", leg_id)
    if not leg_id:
        leg_id = await rt.agent_leg.dial(dial)
    if attempt == 1:  # the fault stands for one worker dying here, so the retry goes on
        await faults.hold_open("the dial", rt.settings.fault_dial_delay_s)
    async with session_scope(rt.settings.effective_database_url) as session:
        await transfers.record_state(
            session, request.call_record_id, TransferState.DIALING.value, leg_id=leg_id
        )
    return leg_id


@activity.defn(name="transfer.hang_up")
async def hang_up_agent(request: HangUpInput) -> None:
    await runtime.current().agent_leg.hang_up(request.transfer_id, request.leg_id, request.agent_id)


@activity.defn(name="conversation.announce")
async def announce(request: AnnounceInput) -> None:
    """Tells the caller's page that the assistant speaks up on its own (the audio follows
    on the named turn's stream)."""
    await events.publish(
        runtime.current().redis,
        events.conversation_channel(request.conversation_id),
        events.AssistantSays(text=request.text, turn=request.turn, turn_key=request.turn_key),
    )
