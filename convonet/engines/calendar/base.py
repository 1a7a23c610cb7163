"""The calendar interface. Every call is scoped to one user id from workflow state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession


class CalendarEventData(BaseModel):
    id: str
    title: str
    starts_at: datetime
    ends_at: datetime
    location: str = ""


class CalendarError(Exception):
    """The calendar provider refused or failed; the message is safe to speak."""


class CalendarBackend(ABC):
    """Stores calendar events for a user.

    `session` is the tool's database transaction: the local backend writes in it so the
    event and the tool's idempotency row commit together. `idempotency_key` lets remote
    backends make a retried create land on the same event.
    """

    name: str

    @abstractmethod
    async def create(
        self,
        session: AsyncSession,
        user_id: int,
        title: str,
        starts_at: datetime,
        ends_at: datetime,
        location: str,
        idempotency_key: str,
    ) -> CalendarEventData: ...

    @abstractmethod
    async def list(
        self, session: AsyncSession, user_id: int, start: datetime, end: datetime
    ) -> list[CalendarEventData]: ...

    @abstractmethod
    async def update(
        self,
        session: AsyncSession,
        user_id: int,
        event_id: str,
        title: str | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        location: str | None = None,
    ) -> CalendarEventData | None:
        """Returns None when the user has no such event."""

    @abstractmethod
    async def delete(self, session: AsyncSession, user_id: int, event_id: str) -> bool:
        """Returns False when the user has no such event."""
