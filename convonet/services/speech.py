"""Short spoken phrases: lists, counts, days and clock times, in plain words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta

# Characters that read as markup rather than words when spoken.
_MARKUP = re.compile(r"[*_#`~|<>\[\]{}]")
_SPACES = re.compile(r"\s+")


def clean(text: str, limit: int = 60) -> str:
    """Stored text made safe to speak: one line, no markup, cut at a word boundary."""
    text = _SPACES.sub(" ", _MARKUP.sub(" ", text)).strip()
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0]


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def join(items: Sequence[str], limit: int = 5, total: int | None = None) -> str:
    """'a', 'a and b', 'a, b, and c'; beyond `limit`, 'and N more' out of `total`."""
    shown = list(items[:limit])
    more = (len(items) if total is None else total) - len(shown)
    if more > 0:
        shown.append(f"{more} more")
    if len(shown) <= 2:
        return " and ".join(shown)
    return ", ".join(shown[:-1]) + ", and " + shown[-1]


def either(items: Sequence[str]) -> str:
    """'a or b', 'a, b, or c': for asking which one."""
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]


def clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return f"{hour} {half}" if moment.minute == 0 else f"{hour}:{moment.minute:02d} {half}"


def day(value: date, today: date) -> str:
    if value == today:
        return "today"
    if value == today + timedelta(days=1):
        return "tomorrow"
    if value == today - timedelta(days=1):
        return "yesterday"
    return f"{value:%A}, {value:%B} {value.day}"


def on_day(value: date, today: date) -> str:
    """'today', or 'on Friday, November 27': reads after a verb."""
    name = day(value, today)
    return (
        name
        if value in (today, today + timedelta(days=1), today - timedelta(days=1))
        else f"on {name}"
    )


def when(moment: datetime, today: date) -> str:
    """'today at 3 PM', 'Friday, November 27 at 9:30 AM'; `moment` in the caller's zone."""
    return f"{day(moment.date(), today)} at {clock(moment)}"


def day_span(first: date, last: date, today: date) -> str:
    if first == last:
        return on_day(first, today)
    return f"from {day(first, today)} to {day(last, today)}"
