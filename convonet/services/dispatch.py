"""Runs one tool call by name: validates the LLM's arguments, then acts as the caller.

The caller's id comes only from `ctx` (workflow state). The calling activity owns the
transaction and the idempotency row; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.agent import tool_specs as specs
from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult, refused
from convonet.engines.calendar.base import CalendarBackend, CalendarError
from convonet.services import calendar, departments, reminders, teams, todos
from convonet.services.errors import Refusal


@dataclass(frozen=True)
class ToolEnv:
    session: AsyncSession
    ctx: TurnContext
    calendar: CalendarBackend
    idempotency_key: str


Handler = Callable[[ToolEnv, Any], Awaitable[ToolResult]]

# Argument models come from TOOL_SPECS; this table only says which function runs.
HANDLERS: dict[str, Handler] = {
    "create_todo": lambda e, a: todos.create_todo(e.session, e.ctx, a),
    "list_todos": lambda e, a: todos.list_todos(e.session, e.ctx, a),
    "update_todo": lambda e, a: todos.update_todo(e.session, e.ctx, a),
    "complete_todo": lambda e, a: todos.complete_todo(e.session, e.ctx, a),
    "delete_todo": lambda e, a: todos.delete_todo(e.session, e.ctx, a),
    "create_reminder": lambda e, a: reminders.create_reminder(e.session, e.ctx, a),
    "list_reminders": lambda e, a: reminders.list_reminders(e.session, e.ctx, a),
    "update_reminder": lambda e, a: reminders.update_reminder(e.session, e.ctx, a),
    "delete_reminder": lambda e, a: reminders.delete_reminder(e.session, e.ctx, a),
    "create_event": lambda e, a: calendar.create_event(
        e.session, e.ctx, a, e.calendar, e.idempotency_key
    ),
    "list_events": lambda e, a: calendar.list_events(e.session, e.ctx, a, e.calendar),
    "update_event": lambda e, a: calendar.update_event(e.session, e.ctx, a, e.calendar),
    "delete_event": lambda e, a: calendar.delete_event(e.session, e.ctx, a, e.calendar),
    "list_my_teams": lambda e, a: teams.list_my_teams(e.session, e.ctx, a),
    "list_team_members": lambda e, a: teams.list_team_members(e.session, e.ctx, a),
    "create_team": lambda e, a: teams.create_team(e.session, e.ctx, a),
    "add_team_member": lambda e, a: teams.add_team_member(e.session, e.ctx, a),
    "remove_team_member": lambda e, a: teams.remove_team_member(e.session, e.ctx, a),
    "change_member_role": lambda e, a: teams.change_member_role(e.session, e.ctx, a),
    "search_users": lambda e, a: teams.search_users(e.session, e.ctx, a),
    "create_team_todo": lambda e, a: todos.create_team_todo(e.session, e.ctx, a),
    "list_departments": lambda e, a: departments.list_departments(e.session, e.ctx, a),
    "transfer_to_agent": lambda e, a: departments.transfer_to_agent(e.session, e.ctx, a),
    "take_message": lambda e, a: departments.take_message(e.session, e.ctx, a),
}


async def execute_tool(
    session: AsyncSession,
    ctx: TurnContext,
    name: str,
    raw_args: dict[str, Any],
    calendar: CalendarBackend,
    idempotency_key: str,
) -> ToolResult:
    """The tool's result; refusals and bad arguments come back as ok=False, never raised.

    Database and other infrastructure errors do raise, so the activity retries them.
    """
    spec, handler = specs.TOOLS_BY_NAME.get(name), HANDLERS.get(name)
    if spec is None or handler is None:
        return refused("I don't have a tool for that.")
    try:
        args = spec.args.model_validate(raw_args or {})
    except ValidationError as error:
        return _invalid(error)
    env = ToolEnv(session, ctx, calendar, idempotency_key)
    try:
        return await handler(env, args)
    except Refusal as refusal:
        return ToolResult(ok=False, say=refusal.say, data=refusal.data)
    except CalendarError as error:
        return refused(str(error) or "The calendar isn't available right now.")


def _invalid(error: ValidationError) -> ToolResult:
    errors = error.errors(include_url=False, include_input=False)
    problems = [
        {"field": ".".join(str(part) for part in e["loc"]), "problem": e["msg"]} for e in errors
    ]
    # One spoken sentence about the first problem; the LLM gets them all in data.
    first = errors[0]
    field = str(first["loc"][-1]).replace("_", " ") if first["loc"] else "details"
    if first["type"] == "missing":
        say = f"I still need the {field}."
    elif first["type"] == "extra_forbidden":
        say = f"That tool doesn't take a {field}."
    else:
        say = f"The {field} doesn't look right."
    return ToolResult(ok=False, say=say, data={"errors": problems})
