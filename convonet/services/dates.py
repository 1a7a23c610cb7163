"""Dates and times from tool arguments, read in the caller's time zone.

Everything is stored in UTC: SQLite drops the offset of timezone-aware values, so storing
one zone keeps comparisons right on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from convonet.agent.context import TurnContext
from convonet.services.errors import Refusal

# A todo due "on Friday" is due by the end of Friday, not at its first minute.
END_OF_DAY = time(23, 59)
# Longest day range a list tool accepts, so one call can't scan years of rows.
MAX_RANGE_DAYS = 62


def caller_zone(ctx: TurnContext) -> tzinfo:
    try:
        return ZoneInfo(ctx.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def caller_now(ctx: TurnContext) -> datetime:
    zone = caller_zone(ctx)
    now = datetime.fromisoformat(ctx.now_iso)
    return now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise Refusal(f"I couldn't understand the {what} {text[:40]}.") from None


def parse_when(text: str, zone: tzinfo, what: str, date_only_time: time | None) -> datetime:
    """An ISO date or date-time; naive values are in `zone`.

    A bare date gets `date_only_time`, or is refused when a time of day is required.
    """
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if date_only_time is None:
            raise Refusal(f"What time should the {what} be?")
        return datetime.combine(day, date_only_time, tzinfo=zone)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Refusal(f"I couldn't understand the {what} {text[:40]}.") from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def day_start(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def day_range(ctx: TurnContext, day: str | None, end_day: str | None) -> tuple[date, date]:
    """First and last (inclusive) day asked for; today when no day is given."""
    first = parse_day(day, "day") if day else caller_now(ctx).date()
    last = parse_day(end_day, "end day") if end_day else first
    if last < first:
        raise Refusal("The end day is before the start day.")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise Refusal("Please ask for two months or less at a time.")
    return first, last


def window(first: date, last: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The instants covering days `first`..`last` in `zone`, end exclusive."""
    return day_start(first, zone), day_start(last + timedelta(days=1), zone)


def to_db(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def from_db(moment: datetime, zone: tzinfo) -> datetime:
    """A stored value in the caller's zone; naive values (SQLite) were stored as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)
