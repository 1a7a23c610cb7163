"""The caller's own words for the recognizer: teams, teammates, open todos, pending reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from convonet.db.models import Reminder, TeamRole, Todo, User
from convonet.db.session import session_scope
from convonet.speech.vocabulary import MAX_PHRASES, load_vocabulary
from tests.services.conftest import make_team

SOON = datetime(2026, 11, 26, 9, tzinfo=UTC)


async def test_teams_teammates_todos_and_reminders(db_url: str, users: dict[str, User]) -> None:
    ann, bob, cat, dan = users["ann"], users["bob"], users["cat"], users["dan"]
    sales = await make_team(
        db_url, "Sales", {ann: TeamRole.OWNER, bob: TeamRole.MEMBER, dan: TeamRole.MEMBER}
    )
    await make_team(db_url, "Design", {ann: TeamRole.VIEWER})
    await make_team(db_url, "Secret", {cat: TeamRole.OWNER})
    async with session_scope(db_url) as session:
        session.add_all(
            [
                Todo(title="Walk  the dog", creator_id=ann.id),
                Todo(title="Buy milk", creator_id=ann.id, done=True),
                Todo(title="Prepare the pitch", creator_id=bob.id, team_id=sales.id),
                Todo(title="Bob's diary", creator_id=bob.id, team_id=sales.id, private=True),
                Todo(title="Review slides", creator_id=cat.id, assignee_id=ann.id),
                Todo(title="Cat's own", creator_id=cat.id),
                Todo(title="SALES", creator_id=ann.id),
                Reminder(user_id=ann.id, text="call mom", remind_at=SOON + timedelta(hours=1)),
                Reminder(user_id=ann.id, text="take the pills", remind_at=SOON),
                Reminder(user_id=ann.id, text="old news", remind_at=SOON, done=True),
                Reminder(user_id=bob.id, text="bob's reminder", remind_at=SOON),
            ]
        )

    async with session_scope(db_url) as session:
        vocabulary = await load_vocabulary(session, ann.id)

    assert vocabulary.phrases == (
        "Design",
        "Sales",
        "Ann Lee",
        "Bob Ray",
        "Review slides",  # todos newest first
        "Prepare the pitch",
        "Walk the dog",
        "take the pills",
        "call mom",
    )


async def test_a_user_without_data_has_no_phrases(db_url: str, users: dict[str, User]) -> None:
    async with session_scope(db_url) as session:
        assert (await load_vocabulary(session, users["cat"].id)).phrases == ()


async def test_phrases_are_capped(db_url: str, users: dict[str, User]) -> None:
    ann = users["ann"]
    async with session_scope(db_url) as session:
        session.add_all(Todo(title=f"task {n}", creator_id=ann.id) for n in range(MAX_PHRASES + 20))
    async with session_scope(db_url) as session:
        phrases = (await load_vocabulary(session, ann.id)).phrases
    assert len(phrases) == MAX_PHRASES
    assert phrases[0] == f"task {MAX_PHRASES + 19}"  # the newest are kept
