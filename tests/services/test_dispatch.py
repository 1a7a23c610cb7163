"""The dispatcher: every spec'd tool is wired, and bad calls come back as ok=False."""

from __future__ import annotations

from convonet.agent.tool_specs import TOOLS_BY_NAME
from convonet.db.models import User
from convonet.services.dispatch import HANDLERS
from tests.services.conftest import Run


def test_every_spec_d_tool_has_a_handler_and_nothing_else_does() -> None:
    assert set(HANDLERS) == set(TOOLS_BY_NAME)


async def test_unknown_tool(run: Run, users: dict[str, User]) -> None:
    result = await run(users["ann"], "run_sql", query="select 1")
    assert not result.ok and result.say == "I don't have a tool for that."


async def test_bad_arguments(run: Run, users: dict[str, User]) -> None:
    missing = await run(users["ann"], "create_todo")
    assert not missing.ok and missing.say == "I still need the title."
    assert missing.data["errors"][0]["field"] == "title"
    wrong = await run(users["ann"], "create_todo", title="x", priority="whenever")
    assert not wrong.ok and wrong.say == "The priority doesn't look right."
    too_long = await run(
        users["ann"],
        "create_event",
        title="x",
        starts_at="2026-11-26T10:00",
        duration_minutes=100000,
    )
    assert not too_long.ok


async def test_user_id_cannot_come_from_arguments(run: Run, users: dict[str, User]) -> None:
    result = await run(users["ann"], "list_todos", user_id=users["bob"].id)
    assert not result.ok and result.say == "That tool doesn't take a user id."
