"""Todo tools. A caller sees todos they created or are assigned to, plus non-private todos
of their teams; team todos change only with a role above viewer."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import CreateTeamTodo, CreateTodo, ListTodos, TodoRef, UpdateTodo
from convonet.db.models import Priority, TeamRole, Todo
from convonet.services import dates, membership, speech
from convonet.services.errors import Refusal
from convonet.services.matching import pick_row

# Longest list returned in data; speech reads only the first few anyway.
_LIST_LIMIT = 50
# Words a caller may use to drop a due date.
_NO_DUE = frozenset({"", "none", "null", "no"})

_DUE_WORDS = {"today": "due today", "tomorrow": "due tomorrow", "this_week": "due this week"}


def _visible(user_id: int, roles: dict[int, TeamRole]) -> ColumnElement[bool]:
    # Private todos stay with their creator even when assigned or filed under a team.
    shared = or_(Todo.assignee_id == user_id, Todo.team_id.in_(list(roles)))
    return or_(Todo.creator_id == user_id, and_(Todo.private.is_(False), shared))


def _visible_todos(user_id: int, roles: dict[int, TeamRole]) -> Select[Todo]:
    return select(Todo).where(_visible(user_id, roles))


def item(todo: Todo, zone: tzinfo) -> dict[str, Any]:
    return {
        "id": todo.id,
        "title": todo.title,
        "priority": todo.priority.value,
        "due": dates.from_db(todo.due, zone).isoformat() if todo.due else None,
        "done": todo.done,
    }


def _parse_due(text: str | None, zone: tzinfo) -> datetime | None:
    return dates.to_db(dates.parse_when(text, zone, "due date", dates.END_OF_DAY)) if text else None


async def _editable(
    session: AsyncSession, ctx: TurnContext, ref: TodoRef, open_only: bool = False
) -> Todo:
    roles = await membership.roles_by_team(session, ctx.user_id)
    visible = _visible_todos(ctx.user_id, roles)
    if open_only and ref.todo_id is None:
        # "complete buy milk" means the open one, not last week's finished twin.
        visible = visible.where(Todo.done.is_(False))
    todo = await pick_row(
        session,
        visible,
        Todo.id,
        Todo.title,
        ref.todo_id,
        ref.title_match,
        "todo",
    )
    if todo.team_id is not None and roles.get(todo.team_id) not in membership.EDITORS:
        raise Refusal("You can read that team todo but not change it.")
    return todo


async def create_todo(session: AsyncSession, ctx: TurnContext, args: CreateTodo) -> ToolResult:
    zone = dates.caller_zone(ctx)
    todo = Todo(
        title=args.title,
        description=args.description,
        priority=Priority(args.priority),
        due=_parse_due(args.due, zone),
        creator_id=ctx.user_id,
    )
    session.add(todo)
    await session.flush()
    return ToolResult(
        ok=True,
        say=f"Added {speech.clean(todo.title)} to your todos.",
        data={"todo": item(todo, zone)},
    )


async def create_team_todo(
    session: AsyncSession, ctx: TurnContext, args: CreateTeamTodo
) -> ToolResult:
    team, role = await membership.my_team(session, ctx.user_id, args.team)
    if role not in membership.EDITORS:
        raise Refusal(f"As a viewer you can't add todos to {speech.clean(team.name, 40)}.")
    assignee = None
    if args.assignee:
        assignee = await membership.find_user(session, args.assignee, team.id)
        found = await membership.membership(session, team.id, assignee.id)
        # A viewer could never complete the todo, so assigning one would strand it.
        if found is None or found.role not in membership.EDITORS:
            raise Refusal(f"{speech.clean(assignee.name, 40)} is only a viewer of that team.")
    zone = dates.caller_zone(ctx)
    todo = Todo(
        title=args.title,
        priority=Priority(args.priority),
        due=_parse_due(args.due, zone),
        creator_id=ctx.user_id,
        assignee_id=assignee.id if assignee else None,
        team_id=team.id,
    )
    session.add(todo)
    await session.flush()
    to_whom = f" for {speech.clean(assignee.name, 40)}" if assignee else ""
    return ToolResult(
        ok=True,
        say=f"Added {speech.clean(todo.title)} to {speech.clean(team.name, 40)}{to_whom}.",
        data={"todo": item(todo, zone), "team": team.name},
    )


async def list_todos(session: AsyncSession, ctx: TurnContext, args: ListTodos) -> ToolResult:
    roles = await membership.roles_by_team(session, ctx.user_id)
    query = _visible_todos(ctx.user_id, roles)
    if args.due == "overdue":  # overdue only makes sense for open todos, whatever the status
        query = query.where(Todo.done.is_(False))
    elif args.status != "all":
        query = query.where(Todo.done.is_(args.status == "done"))
    if args.priority:
        query = query.where(Todo.priority == Priority(args.priority))
    if args.due:
        query = query.where(*_due_filter(ctx, args.due))
    todos = list(
        await session.scalars(
            query.order_by(Todo.due.asc().nulls_last(), Todo.id).limit(_LIST_LIMIT)
        )
    )
    total = len(todos)
    if total == _LIST_LIMIT:  # only then can there be more than we loaded
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    zone = dates.caller_zone(ctx)
    return ToolResult(
        ok=True,
        say=_list_sentence(args, [speech.clean(t.title) for t in todos], total),
        data={"items": [item(t, zone) for t in todos], "total": total},
    )


def _due_filter(ctx: TurnContext, due: str) -> tuple[ColumnElement[bool], ...]:
    now = dates.caller_now(ctx)
    today = now.date()
    if due == "overdue":
        return (Todo.due < dates.to_db(now),)
    if due == "today":
        first, last = today, today
    elif due == "tomorrow":
        first = last = today + timedelta(days=1)
    else:  # this_week: Monday to Sunday of the current week
        first = today - timedelta(days=today.weekday())
        last = first + timedelta(days=6)
    start, end = dates.window(first, last, dates.caller_zone(ctx))
    return Todo.due >= dates.to_db(start), Todo.due < dates.to_db(end)


def _list_sentence(args: ListTodos, titles: list[str], total: int) -> str:
    words = []
    if args.due == "overdue":
        words.append("overdue")
    elif args.status != "all":
        words.append("open" if args.status == "open" else "completed")
    if args.priority:
        words.append(f"{args.priority} priority")
    described = " ".join([*words, "todo"])
    due = f" {_DUE_WORDS[args.due]}" if args.due in _DUE_WORDS else ""
    if not titles:
        return f"You have no {described}s{due}."
    listed = speech.join(titles, total=total)
    return f"You have {speech.count(total, described)}{due}: {listed}."


async def update_todo(session: AsyncSession, ctx: TurnContext, args: UpdateTodo) -> ToolResult:
    todo = await _editable(session, ctx, args)
    zone = dates.caller_zone(ctx)
    changed = False
    if args.new_title:
        todo.title, changed = args.new_title, True
    if args.description is not None:
        todo.description, changed = args.description, True
    if args.priority:
        todo.priority, changed = Priority(args.priority), True
    if args.due is not None:
        todo.due = None if args.due.lower() in _NO_DUE else _parse_due(args.due, zone)
        changed = True
    if not changed:
        raise Refusal(f"What should I change about {speech.clean(todo.title)}?")
    await session.flush()
    return ToolResult(
        ok=True, say=f"Updated {speech.clean(todo.title)}.", data={"todo": item(todo, zone)}
    )


async def complete_todo(session: AsyncSession, ctx: TurnContext, args: TodoRef) -> ToolResult:
    todo = await _editable(session, ctx, args, open_only=True)
    title = speech.clean(todo.title)
    zone = dates.caller_zone(ctx)
    if todo.done:
        return ToolResult(
            ok=True, say=f"{title} was already done.", data={"todo": item(todo, zone)}
        )
    todo.done = True
    await session.flush()
    return ToolResult(ok=True, say=f"Marked {title} as done.", data={"todo": item(todo, zone)})


async def delete_todo(session: AsyncSession, ctx: TurnContext, args: TodoRef) -> ToolResult:
    todo = await _editable(session, ctx, args)
    data = {"todo": item(todo, dates.caller_zone(ctx))}
    await session.delete(todo)
    await session.flush()
    return ToolResult(ok=True, say=f"Deleted {speech.clean(todo.title)}.", data=data)
