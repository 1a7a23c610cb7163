"""Calendar events in the app's own `calendar_events` table, in the tool's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.db.models import CalendarEvent
from convonet.engines.calendar.base import CalendarBackend, CalendarEventData

# Event ids are strings at the interface; here they are 32-bit row ids.
_MAX_ROW_ID = 2**31 - 1


def _utc(moment: datetime) -> datetime:
    # SQLite returns naive values; they were written as UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _data(row: CalendarEvent) -> CalendarEventData:
    return CalendarEventData(
        id=str(row.id),
        title=row.title,
        starts_at=_utc(row.starts_at),
        ends_at=_utc(row.ends_at),
        location=row.location,
    )


class LocalCalendar(CalendarBackend):
    name = "local"

    async def _row(
        self, session: AsyncSession, user_id: int, event_id: str
    ) -> CalendarEvent | None:
        if not event_id.isdigit() or not 0 < int(event_id) <= _MAX_ROW_ID:
            return None
        query = select(CalendarEvent).where(
            CalendarEvent.id == int(event_id), CalendarEvent.user_id == user_id
        )
        return (await session.scalars(query)).first()

    async def create(
        self,
        session: AsyncSession,
        user_id: int,
        title: str,
        starts_at: datetime,
        ends_at: datetime,
        location: str,
        idempotency_key: str,
    ) -> CalendarEventData:
        # The idempotency row commits in the same transaction, so the key isn't needed here.
        row = CalendarEvent(
            user_id=user_id,
            title=title,
            starts_at=_utc(starts_at),
            ends_at=_utc(ends_at),
            location=location,
        )
        session.add(row)
        await session.flush()
        return _data(row)

    async def list(
        self, session: AsyncSession, user_id: int, start: datetime, end: datetime
    ) -> list[CalendarEventData]:
        # Overlap, not containment: an event running into the window belongs to it.
        query = (
            select(CalendarEvent)
            .where(
                CalendarEvent.user_id == user_id,
                CalendarEvent.starts_at < _utc(end),
                CalendarEvent.ends_at > _utc(start),
            )
            .order_by(CalendarEvent.starts_at, CalendarEvent.id)
        )
        return [_data(row) for row in await session.scalars(query)]

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
        row = await self._row(session, user_id, event_id)
        if row is None:
            return None
        if title is not None:
            row.title = title
        if starts_at is not None:
            row.starts_at = _utc(starts_at)
        if ends_at is not None:
            row.ends_at = _utc(ends_at)
        if location is not None:
            row.location = location
        await session.flush()
        return _data(row)

    async def delete(self, session: AsyncSession, user_id: int, event_id: str) -> bool:
        row = await self._row(session, user_id, event_id)
        if row is None:
            return False
        await session.delete(row)
        await session.flush()
        return True
