"""Helpers for service tests: seeded users and a one-call way to run a tool as someone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

import pytest

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.db.models import Team, TeamMembership, TeamRole, User
from convonet.db.session import session_scope
from convonet.engines.calendar.local import LocalCalendar
from convonet.services.dispatch import execute_tool

NOW = "2026-11-25T10:00:00-05:00"  # a Wednesday, New York time
_calls = count()

Run = Callable[..., Awaitable[ToolResult]]


def context(user: User, tz: str = "America/New_York", now: str = NOW) -> TurnContext:
    return TurnContext(
        conversation_id="conv-1",
        workflow_id="wf-1",
        turn=1,
        user_id=user.id,
        user_name=user.name,
        timezone=tz,
        now_iso=now,
    )


@pytest.fixture
def run(db_url: str) -> Run:
    """Runs one tool as `user` in its own committed transaction, like the activity does."""

    async def _run(user: User, name: str, /, **args: Any) -> ToolResult:
        async with session_scope(db_url) as session:
            return await execute_tool(
                session, context(user), name, args, LocalCalendar(), f"key-{next(_calls)}"
            )

    return _run


@pytest.fixture
async def users(db_url: str) -> dict[str, User]:
    """Ann, Bob, Cat and Dan (inactive), keyed by first name in lower case."""
    people = {
        "ann": User(name="Ann Lee", email="ann@example.com", pin_hash="h-ann"),
        "bob": User(name="Bob Ray", email="bob@example.com", pin_hash="h-bob"),
        "cat": User(name="Cat Diaz", email="cat@example.com", pin_hash="h-cat"),
        "dan": User(name="Dan Old", email="dan@example.com", pin_hash="h-dan", active=False),
    }
    async with session_scope(db_url) as session:
        session.add_all(people.values())
    return people


async def make_team(db_url: str, name: str, roles: dict[User, TeamRole]) -> Team:
    async with session_scope(db_url) as session:
        team = Team(name=name)
        session.add(team)
        await session.flush()
        for user, role in roles.items():
            session.add(TeamMembership(team_id=team.id, user_id=user.id, role=role))
    return team
