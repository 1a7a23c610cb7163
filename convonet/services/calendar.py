"""Calendar tools, through whichever CalendarBackend is configured; owner-only by design,
since every backend call is scoped to the caller's user id."""

from __future__ import annotations

from datetime import date, timedelta, tzinfo
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import CreateEvent, DateRange, EventRef, UpdateEvent
from convonet.engines.calendar.base import CalendarBackend, CalendarEventData
from convonet.services import dates, speech
from convonet.services.errors import Refusal
from convonet.services.matching import choose

# Events a caller can point at by title or id when changing one: recent past to next year.
_LOOK_BACK = timedelta(days=31)
_LOOK_AHEAD = timedelta(days=400)


def item(event: CalendarEventData, zone: tzinfo) -> dict[str, Any]:
    return {
        "id": event.id,
        "title": event.title,
        "starts_at": event.starts_at.astimezone(zone).isoformat(),
        "ends_at": event.ends_at.astimezone(zone).isoformat(),
        "location": event.location,
    }


def _start(event: CalendarEventData, ctx: TurnContext) -> str:
    start = event.starts_at.astimezone(dates.caller_zone(ctx))
    return speech.when(start, dates.caller_now(ctx).date())


async def _find(
    session: AsyncSession, ctx: TurnContext, ref: EventRef, calendar: CalendarBackend
) -> CalendarEventData:
    if ref.event_id is None and not ref.title_match:
        raise Refusal("Which event do you mean?")
    now = dates.caller_now(ctx)
    events = await calendar.list(session, ctx.user_id, now - _LOOK_BACK, now + _LOOK_AHEAD)
    if ref.event_id is not None:
        for event in events:
            if event.id == ref.event_id:
                return event
        raise Refusal("I couldn't find that event.")
    words = ref.title_match or ""
    matches = [e for e in events if words.casefold() in e.title.casefold()]
    return choose(matches, words, lambda e: e.title, lambda e: e.id, "event")


async def create_event(
    session: AsyncSession,
    ctx: TurnContext,
    args: CreateEvent,
    calendar: CalendarBackend,
    idempotency_key: str,
) -> ToolResult:
    starts_at = dates.parse_when(args.starts_at, dates.caller_zone(ctx), "event", None)
    event = await calendar.create(
        session,
        ctx.user_id,
        args.title,
        starts_at,
        starts_at + timedelta(minutes=args.duration_minutes),
        args.location,
        idempotency_key,
    )
    return ToolResult(
        ok=True,
        say=f"Added {speech.clean(event.title)} to your calendar for {_start(event, ctx)}.",
        data={"event": item(event, dates.caller_zone(ctx))},
    )


async def list_events(
    session: AsyncSession, ctx: TurnContext, args: DateRange, calendar: CalendarBackend
) -> ToolResult:
    zone = dates.caller_zone(ctx)
    first, last = dates.day_range(ctx, args.day, args.end_day)
    start, end = dates.window(first, last, zone)
    events = await calendar.list(session, ctx.user_id, start, end)
    today = dates.caller_now(ctx).date()
    span = speech.day_span(first, last, today)
    if not events:
        say = f"You have nothing on your calendar {span}."
    else:
        spoken = [
            _line(e, zone, today, single_day=first if first == last else None) for e in events
        ]
        say = f"You have {speech.count(len(events), 'event')} {span}: {speech.join(spoken)}."
    return ToolResult(ok=True, say=say, data={"items": [item(e, zone) for e in events]})


def _line(event: CalendarEventData, zone: tzinfo, today: date, single_day: date | None) -> str:
    start = event.starts_at.astimezone(zone)
    # Within one day the clock time is enough; an event from the day before says its day.
    if single_day is not None and start.date() == single_day:
        return f"{speech.clean(event.title)} at {speech.clock(start)}"
    return f"{speech.clean(event.title)} {speech.when(start, today)}"


async def update_event(
    session: AsyncSession, ctx: TurnContext, args: UpdateEvent, calendar: CalendarBackend
) -> ToolResult:
    event = await _find(session, ctx, args, calendar)
    starts_at = ends_at = None
    if args.starts_at or args.duration_minutes:
        # Moving an event keeps its length unless a new one is given.
        starts_at = (
            dates.parse_when(args.starts_at, dates.caller_zone(ctx), "event", None)
            if args.starts_at
            else event.starts_at
        )
        length = (
            timedelta(minutes=args.duration_minutes)
            if args.duration_minutes
            else event.ends_at - event.starts_at
        )
        ends_at = starts_at + length
    if starts_at is None and not args.new_title and args.location is None:
        raise Refusal(f"What should I change about {speech.clean(event.title)}?")
    updated = await calendar.update(
        session,
        ctx.user_id,
        event.id,
        title=args.new_title or None,
        starts_at=starts_at,
        ends_at=ends_at,
        location=args.location,
    )
    if updated is None:
        raise Refusal("I couldn't find that event.")
    return ToolResult(
        ok=True,
        say=f"Updated {speech.clean(updated.title)}, now {_start(updated, ctx)}.",
        data={"event": item(updated, dates.caller_zone(ctx))},
    )


async def delete_event(
    session: AsyncSession, ctx: TurnContext, args: EventRef, calendar: CalendarBackend
) -> ToolResult:
    if args.event_id is not None:
        # Deleting by id needs no lookup, so it works for events outside the search window.
        if not await calendar.delete(session, ctx.user_id, args.event_id):
            raise Refusal("I couldn't find that event.")
        return ToolResult(ok=True, say="Deleted the event.", data={"event_id": args.event_id})
    event = await _find(session, ctx, args, calendar)
    if not await calendar.delete(session, ctx.user_id, event.id):
        raise Refusal("I couldn't find that event.")
    return ToolResult(
        ok=True,
        say=f"Deleted {speech.clean(event.title)}.",
        data={"event": item(event, dates.caller_zone(ctx))},
    )
