"""Todo tools through execute_tool: happy paths, filters, and who may see or change what."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from convonet.db.models import TeamMembership, TeamRole, Todo, User
from convonet.db.session import session_scope
from tests.services.conftest import Run, make_team


async def _todo(db_url: str, creator: User, title: str, **fields: object) -> int:
    async with session_scope(db_url) as session:
        todo = Todo(title=title, creator_id=creator.id, **fields)
        session.add(todo)
        await session.flush()
        return todo.id


async def _stored(db_url: str, todo_id: int) -> Todo | None:
    async with session_scope(db_url) as session:
        return await session.get(Todo, todo_id)


async def test_create_and_list(run: Run, users: dict[str, User]) -> None:
    ann = users["ann"]
    created = await run(ann, "create_todo", title="buy milk", priority="high", due="2026-11-25")
    assert created.ok and created.say == "Added buy milk to your todos."
    # A bare due date means the end of that day in the caller's zone.
    assert created.data["todo"]["due"] == "2026-11-25T23:59:00-05:00"
    await run(ann, "create_todo", title="call the bank")
    await run(ann, "create_todo", title="pay rent", due="2026-11-26T09:00")

    listed = await run(ann, "list_todos")
    assert listed.ok
    assert listed.say == "You have 3 open todos: buy milk, pay rent, and call the bank."
    item = listed.data["items"][0]
    assert set(item) == {"id", "title", "priority", "due", "done"}
    assert item["priority"] == "high" and item["done"] is False


async def test_list_filters(db_url: str, run: Run, users: dict[str, User]) -> None:
    ann = users["ann"]

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).astimezone(UTC)

    await _todo(db_url, ann, "late", due=at("2026-11-24T12:00:00-05:00"))
    await _todo(db_url, ann, "this morning", due=at("2026-11-25T08:00:00-05:00"))
    await _todo(db_url, ann, "tonight", due=at("2026-11-25T23:30:00-05:00"), priority="urgent")
    # 01:00 UTC on the 26th is still the 25th in New York.
    await _todo(db_url, ann, "tomorrow job", due=at("2026-11-26T15:00:00-05:00"))
    await _todo(db_url, ann, "sunday", due=at("2026-11-29T12:00:00-05:00"))
    await _todo(db_url, ann, "next week", due=at("2026-12-01T12:00:00-05:00"))
    await _todo(db_url, ann, "finished", due=at("2026-11-20T12:00:00-05:00"), done=True)

    async def titles(**args: object) -> list[str]:
        result = await run(ann, "list_todos", **args)
        assert result.ok
        return [i["title"] for i in result.data["items"]]

    assert await titles(due="today") == ["this morning", "tonight"]
    assert await titles(due="tomorrow") == ["tomorrow job"]
    assert await titles(due="overdue") == ["late", "this morning"]
    assert await titles(due="overdue", status="all") == ["late", "this morning"]
    assert await titles(due="this_week") == [
        "late",
        "this morning",
        "tonight",
        "tomorrow job",
        "sunday",
    ]
    assert await titles(priority="urgent") == ["tonight"]
    assert await titles(status="done") == ["finished"]
    assert len(await titles(status="all")) == 7

    today = await run(ann, "list_todos", due="today")
    assert today.say == "You have 2 open todos due today: this morning and tonight."
    overdue = await run(ann, "list_todos", due="overdue")
    assert overdue.say == "You have 2 overdue todos: late and this morning."
    none = await run(ann, "list_todos", due="tomorrow", priority="low")
    assert none.say == "You have no open low priority todos due tomorrow."


async def test_list_reads_five_and_counts_the_rest(run: Run, users: dict[str, User]) -> None:
    for n in range(7):
        await run(users["ann"], "create_todo", title=f"task {n}")
    result = await run(users["ann"], "list_todos")
    assert result.say == (
        "You have 7 open todos: task 0, task 1, task 2, task 3, task 4, and 2 more."
    )


async def test_update_complete_delete_by_title(run: Run, users: dict[str, User]) -> None:
    ann = users["ann"]
    await run(ann, "create_todo", title="Buy milk", due="2026-11-27")
    updated = await run(ann, "update_todo", title_match="MILK", priority="urgent", due="none")
    assert updated.ok and updated.say == "Updated Buy milk."
    assert updated.data["todo"]["priority"] == "urgent" and updated.data["todo"]["due"] is None

    renamed = await run(ann, "update_todo", title_match="milk", new_title="Buy oat milk")
    assert renamed.data["todo"]["title"] == "Buy oat milk"

    done = await run(ann, "complete_todo", title_match="oat")
    assert done.ok and done.say == "Marked Buy oat milk as done."
    again = await run(ann, "complete_todo", todo_id=done.data["todo"]["id"])
    assert again.ok and again.say == "Buy oat milk was already done."

    gone = await run(ann, "delete_todo", title_match="oat milk")
    assert gone.ok and gone.say == "Deleted Buy oat milk."
    assert (await run(ann, "list_todos", status="all")).data["items"] == []


async def test_ambiguous_and_missing_titles(run: Run, users: dict[str, User]) -> None:
    ann = users["ann"]
    for title in ("buy milk", "buy bread", "buy eggs", "buy rice"):
        await run(ann, "create_todo", title=title)
    several = await run(ann, "complete_todo", title_match="buy")
    assert not several.ok
    assert several.say == "Which todo do you mean: buy milk, buy bread, or buy eggs?"
    assert len(several.data["candidates"]) == 3

    # An exact title wins over partial matches.
    await run(ann, "create_todo", title="buy milk and honey")
    exact = await run(ann, "complete_todo", title_match="Buy Milk")
    assert exact.ok and exact.data["todo"]["title"] == "buy milk"

    missing = await run(ann, "delete_todo", title_match="walk the dog")
    assert not missing.ok and missing.say == "I couldn't find a todo matching walk the dog."
    neither = await run(ann, "delete_todo")
    assert not neither.ok and neither.say == "Which todo do you mean?"
    # LIKE wildcards in the words are literal.
    assert not (await run(ann, "delete_todo", title_match="%")).ok


async def test_complete_by_title_prefers_open(run: Run, users: dict[str, User]) -> None:
    ann = users["ann"]
    first = await run(ann, "create_todo", title="water plants")
    await run(ann, "complete_todo", todo_id=first.data["todo"]["id"])
    second = await run(ann, "create_todo", title="water plants")
    result = await run(ann, "complete_todo", title_match="water")
    assert result.ok and result.data["todo"]["id"] == second.data["todo"]["id"]


async def test_bad_due_date_is_refused(run: Run, users: dict[str, User]) -> None:
    result = await run(users["ann"], "create_todo", title="x", due="next tuesday-ish")
    assert not result.ok and result.say.startswith("I couldn't understand the due date")


@pytest.mark.parametrize(
    ("tool", "extra"),
    [
        ("update_todo", {"new_title": "stolen"}),
        ("complete_todo", {}),
        ("delete_todo", {}),
    ],
)
async def test_other_users_todos_behave_as_missing(
    db_url: str, run: Run, users: dict[str, User], tool: str, extra: dict[str, str]
) -> None:
    bob_todo = await _todo(db_url, users["bob"], "bob secret plan")
    by_id = await run(users["ann"], tool, todo_id=bob_todo, **extra)
    missing = await run(users["ann"], tool, todo_id=999_999, **extra)
    huge = await run(users["ann"], tool, todo_id=10**12, **extra)
    assert not by_id.ok and by_id.say == "I couldn't find that todo."
    assert by_id == missing == huge
    by_title = await run(users["ann"], tool, title_match="secret", **extra)
    assert not by_title.ok and by_title.say == "I couldn't find a todo matching secret."

    stored = await _stored(db_url, bob_todo)
    assert stored is not None and stored.title == "bob secret plan" and not stored.done
    listed = await run(users["ann"], "list_todos", status="all")
    assert listed.data["items"] == []


async def test_assignee_sees_and_changes_personal_todo(
    db_url: str, run: Run, users: dict[str, User]
) -> None:
    todo_id = await _todo(db_url, users["bob"], "review doc", assignee_id=users["ann"].id)
    assert [i["id"] for i in (await run(users["ann"], "list_todos")).data["items"]] == [todo_id]
    assert (await run(users["ann"], "complete_todo", todo_id=todo_id)).ok


async def test_private_todos_only_for_their_creator(
    db_url: str, run: Run, users: dict[str, User]
) -> None:
    ann, bob = users["ann"], users["bob"]
    team = await make_team(db_url, "Ops", {ann: TeamRole.OWNER, bob: TeamRole.MEMBER})
    private = await _todo(
        db_url, bob, "bob private", team_id=team.id, assignee_id=ann.id, private=True
    )
    assert (await run(ann, "list_todos")).data["items"] == []
    result = await run(ann, "complete_todo", todo_id=private)
    assert not result.ok and result.say == "I couldn't find that todo."
    assert [i["id"] for i in (await run(bob, "list_todos")).data["items"]] == [private]


async def test_team_todos_by_role(db_url: str, run: Run, users: dict[str, User]) -> None:
    ann, bob, cat = users["ann"], users["bob"], users["cat"]
    team = await make_team(db_url, "Ops", {ann: TeamRole.OWNER, bob: TeamRole.VIEWER})
    todo_id = await _todo(db_url, ann, "restock shelves", team_id=team.id)

    # A viewer reads team todos but cannot change them.
    assert [i["id"] for i in (await run(bob, "list_todos")).data["items"]] == [todo_id]
    for tool, extra in (
        ("update_todo", {"new_title": "x"}),
        ("complete_todo", {}),
        ("delete_todo", {}),
    ):
        result = await run(bob, tool, todo_id=todo_id, **extra)
        assert not result.ok and result.say == "You can read that team todo but not change it."
    stored = await _stored(db_url, todo_id)
    assert stored is not None and stored.title == "restock shelves" and not stored.done

    # Someone outside the team sees nothing.
    assert (await run(cat, "list_todos")).data["items"] == []
    assert (await run(cat, "complete_todo", todo_id=todo_id)).say == "I couldn't find that todo."

    # Once promoted to member, the same user may change it.
    async with session_scope(db_url) as session:
        membership = await session.scalar(
            select(TeamMembership).where(TeamMembership.user_id == bob.id)
        )
        assert membership is not None
        membership.role = TeamRole.MEMBER
    assert (await run(bob, "complete_todo", todo_id=todo_id)).ok


async def test_create_team_todo(db_url: str, run: Run, users: dict[str, User]) -> None:
    ann, bob, cat = users["ann"], users["bob"], users["cat"]
    await make_team(
        db_url, "Ops", {ann: TeamRole.ADMIN, bob: TeamRole.MEMBER, cat: TeamRole.VIEWER}
    )

    result = await run(ann, "create_team_todo", team="ops", title="fix the door", assignee="bob")
    assert result.ok and result.say == "Added fix the door to Ops for Bob Ray."
    assert result.data["team"] == "Ops"
    # Bob sees it both as assignee and as team member; Cat as a viewer.
    assert [i["title"] for i in (await run(bob, "list_todos")).data["items"]] == ["fix the door"]
    assert [i["title"] for i in (await run(cat, "list_todos")).data["items"]] == ["fix the door"]

    viewer = await run(cat, "create_team_todo", team="Ops", title="nope")
    assert not viewer.ok and "viewer" in viewer.say
    outsider = await run(users["ann"], "create_team_todo", team="Ops", title="x", assignee="dan")
    assert not outsider.ok and outsider.say == "I couldn't find anyone called dan in that team."
    to_viewer = await run(
        ann, "create_team_todo", team="Ops", title="x", assignee="cat@example.com"
    )
    assert not to_viewer.ok
    not_mine = await run(users["dan"], "create_team_todo", team="Ops", title="x")
    assert not not_mine.ok and not_mine.say == "You're not in a team called Ops."


async def test_create_team_todo_assignee_must_be_member(
    db_url: str, run: Run, users: dict[str, User]
) -> None:
    await make_team(db_url, "Ops", {users["ann"]: TeamRole.OWNER})
    result = await run(users["ann"], "create_team_todo", team="Ops", title="x", assignee="Cat")
    assert not result.ok and result.say == "I couldn't find anyone called Cat in that team."
    async with session_scope(db_url) as session:
        assert list(await session.scalars(select(Todo))) == []


async def test_long_list_counts_everything(db_url: str, run: Run, users: dict[str, User]) -> None:
    async with session_scope(db_url) as session:
        session.add_all(Todo(title=f"t{n}", creator_id=users["ann"].id) for n in range(53))
    result = await run(users["ann"], "list_todos")
    assert len(result.data["items"]) == 50 and result.data["total"] == 53
    assert result.say == "You have 53 open todos: t0, t1, t2, t3, t4, and 48 more."
