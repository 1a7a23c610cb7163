"""Team tools: membership, role checks, the last-owner rule and user lookup."""

from __future__ import annotations

from sqlalchemy import select

from convonet.db.models import TeamMembership, TeamRole, User
from convonet.db.session import session_scope
from tests.services.conftest import Run, make_team


async def _roles(db_url: str) -> dict[int, TeamRole]:
    async with session_scope(db_url) as session:
        rows = await session.scalars(select(TeamMembership))
        return {m.user_id: m.role for m in rows}


async def test_create_and_list(run: Run, users: dict[str, User]) -> None:
    ann, bob = users["ann"], users["bob"]
    created = await run(ann, "create_team", name="Sales", description="deals")
    assert created.ok and created.say == "Created the team Sales, with you as owner."
    duplicate = await run(bob, "create_team", name="sales")
    assert not duplicate.ok and duplicate.say == "There is already a team called sales."

    await run(ann, "add_team_member", team="sales", user="bob@example.com", role="viewer")
    mine = await run(bob, "list_my_teams")
    assert mine.ok and mine.say == "You're in 1 team: Sales as viewer."
    assert mine.data["teams"] == [{"name": "Sales", "role": "viewer"}]
    assert (await run(users["cat"], "list_my_teams")).say == "You're not in any teams yet."

    members = await run(bob, "list_team_members", team="SALES")
    assert members.say == "Sales has 2 members: Ann Lee as owner and Bob Ray as viewer."
    assert members.data["members"][0] == {
        "name": "Ann Lee",
        "email": "ann@example.com",
        "role": "owner",
    }


async def test_members_list_needs_membership(db_url: str, run: Run, users: dict[str, User]) -> None:
    await make_team(db_url, "Secret", {users["ann"]: TeamRole.OWNER})
    result = await run(users["bob"], "list_team_members", team="Secret")
    assert not result.ok and result.say == "You're not in a team called Secret."
    # Same answer as a team that does not exist at all.
    assert (await run(users["bob"], "list_team_members", team="Nope")).say == (
        "You're not in a team called Nope."
    )


async def test_only_managers_add_members(db_url: str, run: Run, users: dict[str, User]) -> None:
    ann, bob, cat = users["ann"], users["bob"], users["cat"]
    team = await make_team(db_url, "Ops", {ann: TeamRole.OWNER, bob: TeamRole.MEMBER})
    denied = await run(bob, "add_team_member", team="Ops", user="Cat Diaz")
    assert not denied.ok and denied.say == "Only owners and admins can manage Ops."
    outsider = await run(cat, "add_team_member", team="Ops", user="Cat Diaz")
    assert not outsider.ok and outsider.say == "You're not in a team called Ops."

    added = await run(ann, "add_team_member", team="ops", user="cat", role="admin")
    assert added.ok and added.say == "Added Cat Diaz to Ops as an admin."
    again = await run(ann, "add_team_member", team="Ops", user="cat")
    assert not again.ok and again.say == "Cat Diaz is already in Ops as an admin."
    inactive = await run(ann, "add_team_member", team="Ops", user="dan@example.com")
    assert not inactive.ok
    assert (await _roles(db_url)) == {
        ann.id: TeamRole.OWNER,
        bob.id: TeamRole.MEMBER,
        cat.id: TeamRole.ADMIN,
    }
    assert team.id


async def test_only_owners_grant_or_remove_owner(
    db_url: str, run: Run, users: dict[str, User]
) -> None:
    ann, bob, cat = users["ann"], users["bob"], users["cat"]
    await make_team(db_url, "Ops", {ann: TeamRole.OWNER, bob: TeamRole.ADMIN})
    grant = await run(bob, "add_team_member", team="Ops", user="cat", role="owner")
    assert not grant.ok and grant.say == "Only an owner can make someone an owner."
    await run(bob, "add_team_member", team="Ops", user="cat", role="member")
    promote = await run(bob, "change_member_role", team="Ops", user="cat", role="owner")
    assert not promote.ok
    demote = await run(bob, "change_member_role", team="Ops", user="ann", role="member")
    assert not demote.ok
    remove = await run(bob, "remove_team_member", team="Ops", user="ann")
    assert not remove.ok and remove.say == "Only an owner can remove another owner."

    # An admin may manage members and admins.
    viewer = await run(bob, "change_member_role", team="Ops", user="cat", role="viewer")
    assert viewer.ok and viewer.say == "Cat Diaz is now a viewer of Ops."
    assert (await _roles(db_url))[ann.id] == TeamRole.OWNER

    made = await run(ann, "change_member_role", team="Ops", user="Cat", role="owner")
    assert made.ok and (await _roles(db_url))[cat.id] == TeamRole.OWNER


async def test_last_owner_stays(db_url: str, run: Run, users: dict[str, User]) -> None:
    ann, bob = users["ann"], users["bob"]
    await make_team(db_url, "Ops", {ann: TeamRole.OWNER, bob: TeamRole.ADMIN})
    leave = await run(ann, "remove_team_member", team="Ops", user="ann@example.com")
    assert not leave.ok and "last owner" in leave.say
    demote = await run(ann, "change_member_role", team="Ops", user="Ann Lee", role="admin")
    assert not demote.ok and "last owner" in demote.say
    assert (await _roles(db_url))[ann.id] == TeamRole.OWNER

    # With a second owner, the first may step down.
    await run(ann, "change_member_role", team="Ops", user="bob", role="owner")
    stepped = await run(ann, "change_member_role", team="Ops", user="ann", role="member")
    assert stepped.ok
    last = await run(bob, "remove_team_member", team="Ops", user="bob")
    assert not last.ok and "last owner" in last.say


async def test_remove_members(db_url: str, run: Run, users: dict[str, User]) -> None:
    ann, bob, cat = users["ann"], users["bob"], users["cat"]
    await make_team(
        db_url, "Ops", {ann: TeamRole.OWNER, bob: TeamRole.MEMBER, cat: TeamRole.VIEWER}
    )
    denied = await run(bob, "remove_team_member", team="Ops", user="cat")
    assert not denied.ok and denied.say == "Only owners and admins can remove members of Ops."
    left = await run(cat, "remove_team_member", team="Ops", user="cat diaz")
    assert left.ok and left.say == "You've left Ops."
    removed = await run(ann, "remove_team_member", team="Ops", user="bob")
    assert removed.ok and removed.say == "Removed Bob Ray from Ops."
    assert (await _roles(db_url)) == {ann.id: TeamRole.OWNER}
    gone = await run(ann, "remove_team_member", team="Ops", user="bob")
    assert not gone.ok and gone.say == "I couldn't find anyone called bob in that team."


async def test_ambiguous_user(db_url: str, run: Run, users: dict[str, User]) -> None:
    async with session_scope(db_url) as session:
        session.add(User(name="Ann Lopez", email="lopez@example.com", pin_hash="h-ann2"))
    await make_team(db_url, "Ops", {users["bob"]: TeamRole.OWNER})
    result = await run(users["bob"], "add_team_member", team="Ops", user="ann")
    assert not result.ok
    assert result.say == (
        "Which one do you mean: Ann Lee at ann@example.com or Ann Lopez at lopez@example.com?"
    )
    # An exact name or email settles it.
    assert (await run(users["bob"], "add_team_member", team="Ops", user="ANN LEE")).ok


async def test_search_users(db_url: str, run: Run, users: dict[str, User]) -> None:
    found = await run(users["ann"], "search_users", query="EXAMPLE.com")
    assert found.ok and found.say == "I found 3 users: Ann Lee, Bob Ray, and Cat Diaz."
    assert found.data["users"][1] == {"name": "Bob Ray", "email": "bob@example.com"}
    assert (await run(users["ann"], "search_users", query="dan")).data["users"] == []

    async with session_scope(db_url) as session:
        session.add_all(
            User(name=f"Zed {n}", email=f"zed{n}@example.com", pin_hash=f"z{n}") for n in range(12)
        )
    many = await run(users["ann"], "search_users", query="zed")
    assert len(many.data["users"]) == 10
    assert (await run(users["ann"], "search_users", query="%")).data["users"] == []
