"""Reminder tools: happy paths in the caller's zone, and strict ownership."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from convonet.db.models import Reminder, User
from convonet.db.session import session_scope
from tests.services.conftest import Run


async def test_create_list_update_delete(run: Run, users: dict[str, User]) -> None:
    ann = users["ann"]
    created = await run(ann, "create_reminder", text="call mom", remind_at="2026-11-25T15:00")
    assert created.ok and created.say == "I'll remind you to call mom today at 3 PM."
    assert created.data["reminder"]["remind_at"] == "2026-11-25T15:00:00-05:00"
    await run(ann, "create_reminder", text="take pills", remind_at="2026-11-25T21:30:00-05:00")
    await run(ann, "create_reminder", text="dentist", remind_at="2026-11-27T09:00:00Z")

    today = await run(ann, "list_reminders")
    assert today.say == "You have 2 reminders today: call mom at 3 PM and take pills at 9:30 PM."
    span = await run(ann, "list_reminders", day="2026-11-25", end_day="2026-11-27")
    assert [r["text"] for r in span.data["items"]] == ["call mom", "take pills", "dentist"]
    assert "dentist Friday, November 27 at 4 AM" in span.say
    empty = await run(ann, "list_reminders", day="2026-11-26")
    assert empty.say == "You have no reminders tomorrow."

    moved = await run(ann, "update_reminder", text_match="MOM", remind_at="2026-11-26T08:00")
    assert moved.ok and moved.say == "Changed the reminder to call mom tomorrow at 8 AM."
    deleted = await run(ann, "delete_reminder", reminder_id=moved.data["reminder"]["id"])
    assert deleted.ok and deleted.say == "Deleted the reminder to call mom."


@pytest.mark.parametrize(
    ("remind_at", "say"),
    [
        ("2026-11-25T09:00", "That time has already passed."),
        ("2026-11-26", "What time should the reminder be?"),
        ("soonish", "I couldn't understand the reminder soonish."),
    ],
)
async def test_bad_times(run: Run, users: dict[str, User], remind_at: str, say: str) -> None:
    result = await run(users["ann"], "create_reminder", text="x", remind_at=remind_at)
    assert not result.ok and result.say == say


async def test_bad_ranges(run: Run, users: dict[str, User]) -> None:
    backwards = await run(users["ann"], "list_reminders", day="2026-11-25", end_day="2026-11-20")
    assert not backwards.ok
    too_long = await run(users["ann"], "list_reminders", day="2026-01-01", end_day="2026-12-31")
    assert not too_long.ok


async def test_other_users_reminders_are_invisible(
    db_url: str, run: Run, users: dict[str, User]
) -> None:
    ann, bob = users["ann"], users["bob"]
    bobs = await run(bob, "create_reminder", text="bob secret", remind_at="2026-11-25T16:00")
    bob_id = bobs.data["reminder"]["id"]

    assert (await run(ann, "list_reminders")).data["items"] == []
    for tool, extra in (("update_reminder", {"text": "hacked"}), ("delete_reminder", {})):
        by_id = await run(ann, tool, reminder_id=bob_id, **extra)
        assert not by_id.ok and by_id.say == "I couldn't find that reminder."
        by_text = await run(ann, tool, text_match="secret", **extra)
        assert not by_text.ok and by_text.say == "I couldn't find a reminder matching secret."

    async with session_scope(db_url) as session:
        stored = (await session.scalars(select(Reminder))).one()
    assert stored.text == "bob secret"
