"""Calendar tools through the local backend: happy paths and strict ownership."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from convonet.db.models import CalendarEvent, User
from convonet.db.session import session_scope
from convonet.engines.calendar.local import LocalCalendar
from tests.services.conftest import Run


async def test_create_list_update_delete(run: Run, users: dict[str, User]) -> None:
    ann = users["ann"]
    created = await run(ann, "create_event", title="standup", starts_at="2026-11-25T11:00")
    assert created.ok and created.say == "Added standup to your calendar for today at 11 AM."
    event = created.data["event"]
    assert isinstance(event["id"], str)
    assert (event["starts_at"], event["ends_at"]) == (
        "2026-11-25T11:00:00-05:00",
        "2026-11-25T12:00:00-05:00",
    )
    await run(
        ann,
        "create_event",
        title="lunch",
        starts_at="2026-11-25T12:30",
        duration_minutes=45,
        location="Cafe",
    )
    await run(ann, "create_event", title="flight", starts_at="2026-11-28T07:15")

    today = await run(ann, "list_events")
    assert today.say == "You have 2 events today: standup at 11 AM and lunch at 12:30 PM."
    week = await run(ann, "list_events", day="2026-11-25", end_day="2026-11-30")
    assert [e["title"] for e in week.data["items"]] == ["standup", "lunch", "flight"]
    free = await run(ann, "list_events", day="2026-11-26")
    assert free.say == "You have nothing on your calendar tomorrow."

    # Moving keeps the length unless a new one is given.
    moved = await run(ann, "update_event", title_match="LUNCH", starts_at="2026-11-26T13:00")
    assert moved.ok and moved.say == "Updated lunch, now tomorrow at 1 PM."
    assert moved.data["event"]["ends_at"] == "2026-11-26T13:45:00-05:00"
    assert moved.data["event"]["location"] == "Cafe"
    renamed = await run(ann, "update_event", event_id=event["id"], new_title="daily standup")
    assert renamed.data["event"]["title"] == "daily standup"
    longer = await run(ann, "update_event", event_id=event["id"], duration_minutes=15)
    assert longer.data["event"]["ends_at"] == "2026-11-25T11:15:00-05:00"

    assert (await run(ann, "delete_event", title_match="flight")).say == "Deleted flight."
    by_id = await run(ann, "delete_event", event_id=event["id"])
    assert by_id.ok
    left = await run(ann, "list_events", day="2026-11-25", end_day="2026-11-30")
    assert [e["title"] for e in left.data["items"]] == ["lunch"]


async def test_refusals(run: Run, users: dict[str, User]) -> None:
    ann = users["ann"]
    no_time = await run(ann, "create_event", title="party", starts_at="2026-11-27")
    assert not no_time.ok and no_time.say == "What time should the event be?"
    await run(ann, "create_event", title="team sync", starts_at="2026-11-25T14:00")
    await run(ann, "create_event", title="team lunch", starts_at="2026-11-25T12:00")
    which = await run(ann, "delete_event", title_match="team")
    assert not which.ok and which.say == "Which event do you mean: team lunch or team sync?"
    nothing = await run(ann, "update_event", title_match="sync")
    assert not nothing.ok and nothing.say == "What should I change about team sync?"
    assert not (await run(ann, "delete_event", event_id="abc")).ok


async def test_other_users_events_are_invisible(
    db_url: str, run: Run, users: dict[str, User]
) -> None:
    ann, bob = users["ann"], users["bob"]
    bobs = await run(bob, "create_event", title="bob interview", starts_at="2026-11-25T16:00")
    bob_id = bobs.data["event"]["id"]

    assert (await run(ann, "list_events")).data["items"] == []
    for tool, extra in (("update_event", {"new_title": "hacked"}), ("delete_event", {})):
        by_id = await run(ann, tool, event_id=bob_id, **extra)
        assert not by_id.ok and by_id.say == "I couldn't find that event."
        by_title = await run(ann, tool, title_match="interview", **extra)
        assert not by_title.ok and by_title.say == "I couldn't find an event matching interview."

    async with session_scope(db_url) as session:
        stored = (await session.scalars(select(CalendarEvent))).one()
    assert stored.title == "bob interview"


async def test_local_backend_scopes_by_user(db_url: str, users: dict[str, User]) -> None:
    backend = LocalCalendar()
    start = datetime(2026, 11, 25, 15, tzinfo=UTC)
    async with session_scope(db_url) as session:
        event = await backend.create(
            session, users["bob"].id, "x", start, start.replace(hour=16), "", "k"
        )
        ann = users["ann"].id
        assert await backend.update(session, ann, event.id, title="y") is None
        assert await backend.delete(session, ann, event.id) is False
        assert await backend.delete(session, ann, "99999999999") is False
        assert await backend.list(session, ann, start, start.replace(hour=20)) == []
        listed = await backend.list(session, users["bob"].id, start, start.replace(hour=20))
        assert [e.id for e in listed] == [event.id]
