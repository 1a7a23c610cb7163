"""The transfer's database side: routing a department to a ready agent, the call record's
states and timestamps, and the screen pop an agent sees."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.db.models import (
    Agent,
    AgentState,
    CallRecord,
    Department,
    TeamMembership,
    Todo,
    User,
)
from convonet.screen_pop import CallerCard, ScreenPop, TodoLine, TranscriptLine

LIVE_STATES = ("dialing", "ringing", "answered", "bridged")
# Each state stamps its own column once; a retried activity never moves a timestamp.
_STAMPS = {
    "dialing": "dialing_at",
    "ringing": "ringing_at",
    "answered": "answered_at",
    "bridged": "bridged_at",
    "ended": "ended_at",
    "failed": "ended_at",
}
_AGENT_STATE_AFTER = {
    "answered": AgentState.ON_CALL,
    "bridged": AgentState.ON_CALL,
}
OPEN_TODOS_SHOWN = 8


async def route(session: AsyncSession, department_name: str) -> Agent | None:
    """The ready agent to ring for a department: the one at the department's extension
    first, then the department's other agents. Agents not ready, or already on a live
    transfer, are skipped."""
    department = await session.scalar(
        select(Department).where(func.lower(Department.name) == department_name.lower())
    )
    if department is None:
        return None
    busy = select(CallRecord.agent_id).where(
        CallRecord.state.in_(LIVE_STATES), CallRecord.agent_id.is_not(None)
    )
    candidates = await session.scalars(
        select(Agent)
        .where(
            Agent.state == AgentState.READY,
            (Agent.sip_extension == department.extension) | (Agent.department_id == department.id),
            Agent.id.not_in(busy),
        )
        .order_by(Agent.sip_extension != department.extension, Agent.id)
    )
    return candidates.first()


async def record_state(
    session: AsyncSession,
    call_record_id: int,
    state: str,
    *,
    agent_id: int | None = None,
    leg_id: str | None = None,
    outcome: str = "",
    transfer_id: str | None = None,
    now: datetime | None = None,
) -> CallRecord:
    record = await session.get(CallRecord, call_record_id, with_for_update=True)
    if record is None:
        raise LookupError(f"call record {call_record_id} does not exist")
    now = now or datetime.now(UTC)
    if record.state not in ("ended", "failed"):
        record.state = state
    stamp = _STAMPS.get(state)
    if stamp and getattr(record, stamp) is None:
        setattr(record, stamp, now)
    if agent_id is not None:
        record.agent_id = agent_id
    if leg_id:
        record.leg_id = leg_id
    if transfer_id:
        record.transfer_id = transfer_id
    if outcome:
        record.outcome = outcome
    if record.agent_id is not None:
        agent = await session.get(Agent, record.agent_id)
        if agent is not None:
            agent.state = _next_agent_state(agent.state, state, answered=record.answered_at)
    return record


def _next_agent_state(
    current: AgentState, transfer_state: str, answered: datetime | None
) -> AgentState:
    if transfer_state in _AGENT_STATE_AFTER:
        return _AGENT_STATE_AFTER[transfer_state]
    if transfer_state in ("ended", "failed") and current == AgentState.ON_CALL:
        # A call that was talked through needs its notes; one never answered does not.
        return AgentState.WRAP_UP if answered is not None else AgentState.READY
    return current


async def save_hand_off(
    session: AsyncSession,
    call_record_id: int,
    transfer_id: str,
    summary: str,
    transcript: list[TranscriptLine],
) -> None:
    record = await session.get(CallRecord, call_record_id)
    if record is None:
        raise LookupError(f"call record {call_record_id} does not exist")
    record.transfer_id = transfer_id
    record.summary = summary
    record.transcript = [line.model_dump() for line in transcript]


async def screen_pop(session: AsyncSession, record: CallRecord, ring_timeout_s: int) -> ScreenPop:
    user = await session.get(User, record.user_id) if record.user_id is not None else None
    department = (
        await session.get(Department, record.department_id)
        if record.department_id is not None
        else None
    )
    teams: list[str] = []
    todos: list[TodoLine] = []
    if user is not None:
        memberships = await session.scalars(
            select(TeamMembership).where(TeamMembership.user_id == user.id)
        )
        for membership in memberships:
            await session.refresh(membership, ["team"])
            teams.append(membership.team.name)
        rows = await session.scalars(
            select(Todo)
            .where(Todo.done.is_(False), Todo.creator_id == user.id)
            .order_by(Todo.due.is_(None), Todo.due, Todo.id)
            .limit(OPEN_TODOS_SHOWN)
        )
        todos = [
            TodoLine(
                title=todo.title,
                due=todo.due.isoformat() if todo.due else None,
                priority=todo.priority.value,
            )
            for todo in rows
        ]
    return ScreenPop(
        transfer_id=record.transfer_id or "",
        call_record_id=record.id,
        conversation_id=record.conversation_id,
        department=department.name if department else "",
        reason=record.reason,
        caller=CallerCard(
            name=user.name if user else "Unknown caller", teams=teams, open_todos=todos
        ),
        transcript=[TranscriptLine.model_validate(line) for line in record.transcript or []],
        summary=record.summary,
        ring_timeout_s=ring_timeout_s,
    )


async def ringing_for_agent(
    session: AsyncSession, agent_id: int, conversation_id: str
) -> CallRecord | None:
    """The live call of this conversation offered to this agent, if there is one."""
    return await session.scalar(
        select(CallRecord)
        .where(
            CallRecord.conversation_id == conversation_id,
            CallRecord.agent_id == agent_id,
            CallRecord.state.in_(LIVE_STATES),
        )
        .order_by(CallRecord.id.desc())
    )
