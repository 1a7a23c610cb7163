"""Pure helpers: spoken phrases and date parsing."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from convonet.agent.context import TurnContext
from convonet.services import dates, speech
from convonet.services.errors import Refusal

NY = ZoneInfo("America/New_York")


def test_join_and_either() -> None:
    assert speech.join(["a"]) == "a"
    assert speech.join(["a", "b"]) == "a and b"
    assert speech.join(["a", "b", "c"]) == "a, b, and c"
    assert speech.join([str(n) for n in range(8)]) == "0, 1, 2, 3, 4, and 3 more"
    assert speech.either(["a", "b", "c"]) == "a, b, or c"


def test_clean_strips_markup_and_lines() -> None:
    assert speech.clean("**Buy**\n# milk `now`") == "Buy milk now"
    assert speech.clean("word " * 30, limit=12) == "word word"


def test_clock_and_days() -> None:
    assert speech.clock(datetime(2026, 1, 1, 0, 5)) == "12:05 AM"
    assert speech.clock(datetime(2026, 1, 1, 12)) == "12 PM"
    today = date(2026, 11, 25)
    assert speech.day_span(date(2026, 11, 27), date(2026, 11, 27), today) == (
        "on Friday, November 27"
    )
    assert speech.day_span(today, date(2026, 11, 26), today) == "from today to tomorrow"


def test_parse_when() -> None:
    naive = dates.parse_when("2026-11-25T15:00", NY, "event", None)
    assert naive.isoformat() == "2026-11-25T15:00:00-05:00"
    aware = dates.parse_when("2026-11-25T15:00:00Z", NY, "event", None)
    assert aware.utcoffset() is not None and aware.hour == 15
    bare = dates.parse_when("2026-11-25", NY, "due date", time(23, 59))
    assert bare.isoformat() == "2026-11-25T23:59:00-05:00"
    with pytest.raises(Refusal):
        dates.parse_when("2026-11-25", NY, "event", None)
    with pytest.raises(Refusal):
        dates.parse_when("tomorrow", NY, "event", None)


def test_unknown_zone_falls_back_to_utc() -> None:
    ctx = TurnContext(
        conversation_id="c",
        workflow_id="w",
        turn=1,
        user_id=1,
        user_name="x",
        timezone="Mars/Olympus",
        now_iso="2026-11-25T10:00:00",
    )
    assert dates.caller_now(ctx).isoformat() == "2026-11-25T10:00:00+00:00"
