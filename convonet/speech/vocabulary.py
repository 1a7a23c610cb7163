"""The words a caller is likely to say that no fixed phrase list can know: their data.

Recognizers are told these phrases (pocketsphinx learns them into its language model,
Deepgram boosts them as key terms), so "mark walk the dog as done" is heard as said.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.db.models import Reminder, Team, TeamMembership, Todo, User
from convonet.engines.stt.base import Vocabulary

MAX_PHRASES = 300


async def load_vocabulary(session: AsyncSession, user_id: int) -> Vocabulary:
    """The caller's team names, their teammates' names, open todo titles and pending
    reminder texts, in that order (few and short first, so the cap cuts the long tail)."""
    team_ids = select(TeamMembership.team_id).where(TeamMembership.user_id == user_id)
    teams = await session.scalars(
        select(Team.name).where(Team.id.in_(team_ids)).order_by(Team.name)
    )
    members = await session.scalars(
        select(User.name)
        .join(TeamMembership, TeamMembership.user_id == User.id)
        .where(TeamMembership.team_id.in_(team_ids), User.active.is_(True))
        .order_by(User.name)
    )
    # The todo tools' visibility rule: own todos, plus non-private ones assigned to the
    # caller or filed under their teams.
    shared = or_(Todo.assignee_id == user_id, Todo.team_id.in_(team_ids))
    todos = await session.scalars(
        select(Todo.title)
        .where(
            Todo.done.is_(False),
            or_(Todo.creator_id == user_id, and_(Todo.private.is_(False), shared)),
        )
        .order_by(Todo.created_at.desc(), Todo.id.desc())
        .limit(MAX_PHRASES)
    )
    reminders = await session.scalars(
        select(Reminder.text)
        .where(Reminder.user_id == user_id, Reminder.done.is_(False))
        .order_by(Reminder.remind_at, Reminder.id)
        .limit(MAX_PHRASES)
    )
    return Vocabulary(_distinct([*teams, *members, *todos, *reminders]))


def _distinct(phrases: Iterable[str]) -> tuple[str, ...]:
    """Whitespace-normalized phrases, first spelling of each kept, at most MAX_PHRASES."""
    seen: dict[str, str] = {}
    for phrase in phrases:
        text = " ".join(phrase.split())
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
            if len(seen) == MAX_PHRASES:
                break
    return tuple(seen.values())
