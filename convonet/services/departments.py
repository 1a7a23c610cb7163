"""Department tools: what a caller can be put through to, and the transfer request itself.

Only names, descriptions and extensions leave here; agents' SIP credentials never do.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import NoArgs, TakeMessage, TransferToAgent
from convonet.db.models import CallRecord, Department, Priority, Todo
from convonet.services import speech
from convonet.services.errors import Refusal

DEFAULT_DEPARTMENT = "general"


async def _all(session: AsyncSession) -> list[Department]:
    return list(await session.scalars(select(Department).order_by(func.lower(Department.name))))


async def list_departments(session: AsyncSession, ctx: TurnContext, _args: NoArgs) -> ToolResult:
    departments = await _all(session)
    data = {"departments": [{"name": d.name, "description": d.description} for d in departments]}
    if not departments:
        return ToolResult(ok=True, say="There are no departments to transfer to.", data=data)
    names = [speech.clean(d.name, 40) for d in departments]
    return ToolResult(ok=True, say=f"I can put you through to {speech.either(names)}.", data=data)


async def transfer_to_agent(
    session: AsyncSession, ctx: TurnContext, args: TransferToAgent
) -> ToolResult:
    wanted = args.department or DEFAULT_DEPARTMENT
    department = await session.scalar(
        select(Department).where(func.lower(Department.name) == wanted.lower())
    )
    if department is None:
        names = [speech.clean(d.name, 40) for d in await _all(session)]
        if not names:
            raise Refusal("There are no departments to transfer to.")
        raise Refusal(
            f"I can only put you through to {speech.either(names)}.", {"departments": names}
        )
    record = CallRecord(
        conversation_id=ctx.conversation_id,
        user_id=ctx.user_id,
        department_id=department.id,
        state="requested",
        reason=args.reason,
    )
    session.add(record)
    await session.flush()
    return ToolResult(
        ok=True,
        say=f"Connecting you to someone in {speech.clean(department.name, 40)}.",
        data={
            "department": department.name,
            "extension": department.extension,
            "reason": args.reason,
            "call_record_id": record.id,
        },
    )


async def take_message(session: AsyncSession, ctx: TurnContext, args: TakeMessage) -> ToolResult:
    """A message for the people nobody could reach: a todo of the department's team."""
    wanted = args.department or ctx.last_failed_department or DEFAULT_DEPARTMENT
    department = await session.scalar(
        select(Department).where(func.lower(Department.name) == wanted.lower())
    )
    if department is None:
        raise Refusal(f"There is no {speech.clean(wanted, 40)} department to leave a message for.")
    if department.team_id is None:
        raise Refusal(f"{speech.clean(department.name, 40)} has no team to take messages.")
    message = " ".join(args.message.split())
    todo = Todo(
        title=f"Call back {ctx.user_name}: {message}"[:200],
        description=f"Message left by {ctx.user_name} for {department.name}: {message}",
        creator_id=ctx.user_id,
        team_id=department.team_id,
        priority=Priority.HIGH,
    )
    session.add(todo)
    await session.flush()
    return ToolResult(
        ok=True,
        say=f"I've passed your message to the {speech.clean(department.name, 40)} team.",
        data={"todo_id": todo.id, "department": department.name},
    )
