"""Reminder tools. Reminders belong to one user; nobody else can see or touch them."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import CreateReminder, DateRange, ReminderRef, UpdateReminder
from convonet.db.models import Reminder
from convonet.services import dates, speech
from convonet.services.errors import Refusal
from convonet.services.matching import pick_row


def _mine(user_id: int) -> Select[Reminder]:
    return select(Reminder).where(Reminder.user_id == user_id)


def item(reminder: Reminder, zone: tzinfo) -> dict[str, Any]:
    return {
        "id": reminder.id,
        "text": reminder.text,
        "remind_at": dates.from_db(reminder.remind_at, zone).isoformat(),
        "done": reminder.done,
    }


def _future_time(ctx: TurnContext, text: str) -> datetime:
    moment = dates.parse_when(text, dates.caller_zone(ctx), "reminder", None)
    if moment <= dates.caller_now(ctx):
        raise Refusal("That time has already passed.")
    return dates.to_db(moment)


def _spoken_time(ctx: TurnContext, reminder: Reminder) -> str:
    local = dates.from_db(reminder.remind_at, dates.caller_zone(ctx))
    return speech.when(local, dates.caller_now(ctx).date())


async def _pick(session: AsyncSession, ctx: TurnContext, ref: ReminderRef) -> Reminder:
    return await pick_row(
        session,
        _mine(ctx.user_id),
        Reminder.id,
        Reminder.text,
        ref.reminder_id,
        ref.text_match,
        "reminder",
    )


async def create_reminder(
    session: AsyncSession, ctx: TurnContext, args: CreateReminder
) -> ToolResult:
    reminder = Reminder(
        user_id=ctx.user_id, text=args.text, remind_at=_future_time(ctx, args.remind_at)
    )
    session.add(reminder)
    await session.flush()
    return ToolResult(
        ok=True,
        say=f"I'll remind you to {speech.clean(reminder.text)} {_spoken_time(ctx, reminder)}.",
        data={"reminder": item(reminder, dates.caller_zone(ctx))},
    )


async def list_reminders(session: AsyncSession, ctx: TurnContext, args: DateRange) -> ToolResult:
    zone = dates.caller_zone(ctx)
    first, last = dates.day_range(ctx, args.day, args.end_day)
    start, end = dates.window(first, last, zone)
    reminders = list(
        await session.scalars(
            _mine(ctx.user_id)
            .where(Reminder.remind_at >= dates.to_db(start), Reminder.remind_at < dates.to_db(end))
            .order_by(Reminder.remind_at, Reminder.id)
        )
    )
    today = dates.caller_now(ctx).date()
    span = speech.day_span(first, last, today)
    if not reminders:
        say = f"You have no reminders {span}."
    else:
        spoken = [
            f"{speech.clean(r.text)} at {speech.clock(dates.from_db(r.remind_at, zone))}"
            if first == last
            else f"{speech.clean(r.text)} {speech.when(dates.from_db(r.remind_at, zone), today)}"
            for r in reminders
        ]
        say = f"You have {speech.count(len(reminders), 'reminder')} {span}: {speech.join(spoken)}."
    return ToolResult(ok=True, say=say, data={"items": [item(r, zone) for r in reminders]})


async def update_reminder(
    session: AsyncSession, ctx: TurnContext, args: UpdateReminder
) -> ToolResult:
    reminder = await _pick(session, ctx, args)
    if not args.text and not args.remind_at:
        raise Refusal(f"What should I change about the reminder {speech.clean(reminder.text)}?")
    if args.remind_at:
        reminder.remind_at = _future_time(ctx, args.remind_at)
        reminder.done = False  # a moved reminder is due again
    if args.text:
        reminder.text = args.text
    await session.flush()
    return ToolResult(
        ok=True,
        say=f"Changed the reminder to {speech.clean(reminder.text)} {_spoken_time(ctx, reminder)}.",
        data={"reminder": item(reminder, dates.caller_zone(ctx))},
    )


async def delete_reminder(session: AsyncSession, ctx: TurnContext, args: ReminderRef) -> ToolResult:
    reminder = await _pick(session, ctx, args)
    data = {"reminder": item(reminder, dates.caller_zone(ctx))}
    await session.delete(reminder)
    await session.flush()
    return ToolResult(
        ok=True, say=f"Deleted the reminder to {speech.clean(reminder.text)}.", data=data
    )
