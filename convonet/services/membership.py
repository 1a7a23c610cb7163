"""Lookups shared by team and todo tools: the caller's teams and roles, and users by name."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.db.models import Team, TeamMembership, TeamRole, User
from convonet.services import speech
from convonet.services.errors import Refusal

# Roles allowed to change a team's todos; viewers only read.
EDITORS = frozenset({TeamRole.OWNER, TeamRole.ADMIN, TeamRole.MEMBER})
MANAGERS = frozenset({TeamRole.OWNER, TeamRole.ADMIN})


async def roles_by_team(session: AsyncSession, user_id: int) -> dict[int, TeamRole]:
    rows = await session.execute(
        select(TeamMembership.team_id, TeamMembership.role).where(TeamMembership.user_id == user_id)
    )
    return {team_id: role for team_id, role in rows}


async def my_team(session: AsyncSession, user_id: int, name: str) -> tuple[Team, TeamRole]:
    """One of the caller's teams by name, any case; other teams read as not found."""
    row = (
        await session.execute(
            select(Team, TeamMembership.role)
            .join(TeamMembership, TeamMembership.team_id == Team.id)
            .where(TeamMembership.user_id == user_id, func.lower(Team.name) == name.lower())
        )
    ).first()
    if row is None:
        raise Refusal(f"You're not in a team called {speech.clean(name, 40)}.")
    return row[0], row[1]


async def find_user(session: AsyncSession, who: str, team_id: int | None = None) -> User:
    """An active user by email or name, any case; within one team when `team_id` is given.

    An exact email or name wins; otherwise a unique partial name match is accepted.
    """
    query = select(User).where(User.active.is_(True))
    if team_id is not None:
        query = query.join(TeamMembership, TeamMembership.user_id == User.id).where(
            TeamMembership.team_id == team_id
        )
    needle = who.strip().lower()
    exact = list(
        await session.scalars(
            query.where(or_(func.lower(User.email) == needle, func.lower(User.name) == needle))
            .order_by(User.id)
            .limit(5)
        )
    )
    users = exact or list(
        await session.scalars(
            query.where(User.name.icontains(needle, autoescape=True)).order_by(User.id).limit(5)
        )
    )
    if len(users) == 1:
        return users[0]
    place = " in that team" if team_id is not None else ""
    if not users:
        raise Refusal(f"I couldn't find anyone called {speech.clean(who, 40)}{place}.")
    raise Refusal(f"Which one do you mean: {_describe(users[:3])}?", {"candidates": _people(users)})


async def membership(session: AsyncSession, team_id: int, user_id: int) -> TeamMembership | None:
    return (
        await session.scalars(
            select(TeamMembership).where(
                TeamMembership.team_id == team_id, TeamMembership.user_id == user_id
            )
        )
    ).first()


def _describe(users: Sequence[User]) -> str:
    return speech.either([f"{speech.clean(u.name, 40)} at {u.email}" for u in users])


def _people(users: Sequence[User]) -> list[dict[str, str]]:
    return [{"name": u.name, "email": u.email} for u in users]
