"""Team tools. Owners and admins manage members; only owners touch the owner role, and a
team always keeps at least one owner."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import (
    AddTeamMember,
    ChangeMemberRole,
    CreateTeam,
    NoArgs,
    SearchUsers,
    TeamMember,
    TeamRef,
)
from convonet.db.models import Team, TeamMembership, TeamRole, User
from convonet.services import membership, speech
from convonet.services.errors import Refusal

_SEARCH_LIMIT = 10


def _article(role: TeamRole) -> str:
    return f"an {role.value}" if role in (TeamRole.OWNER, TeamRole.ADMIN) else f"a {role.value}"


async def _managed_team(
    session: AsyncSession, ctx: TurnContext, name: str
) -> tuple[Team, TeamRole]:
    team, role = await membership.my_team(session, ctx.user_id, name)
    if role not in membership.MANAGERS:
        raise Refusal(f"Only owners and admins can manage {speech.clean(team.name, 40)}.")
    return team, role


async def _keeps_an_owner(session: AsyncSession, team_id: int, leaving: TeamMembership) -> None:
    """Refuse when `leaving` is the team's only owner.

    The owner rows are locked so two owners can't demote each other at the same moment.
    """
    if leaving.role != TeamRole.OWNER:
        return
    owners = await session.scalars(
        select(TeamMembership.id)
        .where(TeamMembership.team_id == team_id, TeamMembership.role == TeamRole.OWNER)
        .with_for_update()
    )
    if len(list(owners)) <= 1:
        raise Refusal("A team needs at least one owner, so the last owner has to stay.")


async def list_my_teams(session: AsyncSession, ctx: TurnContext, _args: NoArgs) -> ToolResult:
    rows = await session.execute(
        select(Team.name, TeamMembership.role)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(TeamMembership.user_id == ctx.user_id)
        .order_by(Team.name)
    )
    teams = [{"name": name, "role": role.value} for name, role in rows]
    if not teams:
        return ToolResult(ok=True, say="You're not in any teams yet.", data={"teams": []})
    spoken = [f"{speech.clean(t['name'], 40)} as {t['role']}" for t in teams]
    return ToolResult(
        ok=True,
        say=f"You're in {speech.count(len(teams), 'team')}: {speech.join(spoken)}.",
        data={"teams": teams},
    )


async def list_team_members(session: AsyncSession, ctx: TurnContext, args: TeamRef) -> ToolResult:
    team, _role = await membership.my_team(session, ctx.user_id, args.team)
    rows = await session.execute(
        select(User.name, User.email, TeamMembership.role)
        .join(TeamMembership, TeamMembership.user_id == User.id)
        .where(TeamMembership.team_id == team.id)
        .order_by(User.name)
    )
    members = [{"name": name, "email": email, "role": role.value} for name, email, role in rows]
    spoken = [f"{speech.clean(m['name'], 40)} as {m['role']}" for m in members]
    return ToolResult(
        ok=True,
        say=f"{speech.clean(team.name, 40)} has {speech.count(len(members), 'member')}: "
        f"{speech.join(spoken)}.",
        data={"team": team.name, "members": members},
    )


async def create_team(session: AsyncSession, ctx: TurnContext, args: CreateTeam) -> ToolResult:
    taken = await session.scalar(
        select(Team.id).where(func.lower(Team.name) == args.name.lower()).limit(1)
    )
    if taken is not None:
        raise Refusal(f"There is already a team called {speech.clean(args.name, 40)}.")
    team = Team(name=args.name, description=args.description)
    session.add(team)
    await session.flush()
    session.add(TeamMembership(team_id=team.id, user_id=ctx.user_id, role=TeamRole.OWNER))
    await session.flush()
    return ToolResult(
        ok=True,
        say=f"Created the team {speech.clean(team.name, 40)}, with you as owner.",
        data={"team": team.name, "role": TeamRole.OWNER.value},
    )


async def add_team_member(
    session: AsyncSession, ctx: TurnContext, args: AddTeamMember
) -> ToolResult:
    team, my_role = await _managed_team(session, ctx, args.team)
    role = TeamRole(args.role)
    if role == TeamRole.OWNER and my_role != TeamRole.OWNER:
        raise Refusal("Only an owner can make someone an owner.")
    user = await membership.find_user(session, args.user)
    name, team_name = speech.clean(user.name, 40), speech.clean(team.name, 40)
    existing = await membership.membership(session, team.id, user.id)
    if existing is not None:
        raise Refusal(f"{name} is already in {team_name} as {_article(existing.role)}.")
    session.add(TeamMembership(team_id=team.id, user_id=user.id, role=role))
    await session.flush()
    return ToolResult(
        ok=True,
        say=f"Added {name} to {team_name} as {_article(role)}.",
        data={"team": team.name, "user": user.name, "email": user.email, "role": role.value},
    )


async def remove_team_member(
    session: AsyncSession, ctx: TurnContext, args: TeamMember
) -> ToolResult:
    team, my_role = await membership.my_team(session, ctx.user_id, args.team)
    user = await membership.find_user(session, args.user, team.id)
    target = await membership.membership(session, team.id, user.id)
    if target is None:  # find_user already limited the search to this team
        raise Refusal(f"{speech.clean(user.name, 40)} isn't in that team.")
    leaving_self = user.id == ctx.user_id
    if not leaving_self and my_role not in membership.MANAGERS:
        raise Refusal(
            f"Only owners and admins can remove members of {speech.clean(team.name, 40)}."
        )
    if not leaving_self and target.role == TeamRole.OWNER and my_role != TeamRole.OWNER:
        raise Refusal("Only an owner can remove another owner.")
    await _keeps_an_owner(session, team.id, target)
    await session.delete(target)
    await session.flush()
    team_name = speech.clean(team.name, 40)
    say = (
        f"You've left {team_name}."
        if leaving_self
        else f"Removed {speech.clean(user.name, 40)} from {team_name}."
    )
    return ToolResult(ok=True, say=say, data={"team": team.name, "user": user.name})


async def change_member_role(
    session: AsyncSession, ctx: TurnContext, args: ChangeMemberRole
) -> ToolResult:
    team, my_role = await _managed_team(session, ctx, args.team)
    user = await membership.find_user(session, args.user, team.id)
    target = await membership.membership(session, team.id, user.id)
    if target is None:
        raise Refusal(f"{speech.clean(user.name, 40)} isn't in that team.")
    role = TeamRole(args.role)
    name = speech.clean(user.name, 40)
    if target.role == role:
        return ToolResult(
            ok=True,
            say=f"{name} is already {_article(role)}.",
            data={"team": team.name, "user": user.name, "role": role.value},
        )
    if TeamRole.OWNER in (role, target.role) and my_role != TeamRole.OWNER:
        raise Refusal("Only an owner can grant or take away the owner role.")
    await _keeps_an_owner(session, team.id, target)
    target.role = role
    await session.flush()
    return ToolResult(
        ok=True,
        say=f"{name} is now {_article(role)} of {speech.clean(team.name, 40)}.",
        data={"team": team.name, "user": user.name, "role": role.value},
    )


async def search_users(session: AsyncSession, ctx: TurnContext, args: SearchUsers) -> ToolResult:
    users = list(
        await session.scalars(
            select(User)
            .where(
                User.active.is_(True),
                or_(
                    User.name.icontains(args.query, autoescape=True),
                    User.email.icontains(args.query, autoescape=True),
                ),
            )
            .order_by(User.name, User.id)
            .limit(_SEARCH_LIMIT)
        )
    )
    people = [{"name": u.name, "email": u.email} for u in users]
    if not users:
        return ToolResult(
            ok=True, say=f"Nobody matches {speech.clean(args.query, 40)}.", data={"users": []}
        )
    spoken = [speech.clean(u.name, 40) for u in users]
    return ToolResult(
        ok=True,
        say=f"I found {speech.count(len(users), 'user')}: {speech.join(spoken)}.",
        data={"users": people},
    )
