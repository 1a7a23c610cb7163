"""Days, times and durations in spoken requests, resolved against the caller's clock.

Input is usually speech-to-text output: lower case, no punctuation, numbers often as words.
`extract_when` finds at most one day (or day range) and one time of day, cuts the words
that said them out of the text and returns the rest, so the caller can read it as a title.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()
_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_MONTH_ABBREVIATIONS = {"sept": 9} | {m[:3]: i for i, m in enumerate(_MONTHS, 1)}
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
# Default clock times for a part of the day said without a time ("tomorrow morning").
_PART_CLOCKS = {
    "morning": time(9),
    "afternoon": time(14),
    "evening": time(18),
    "night": time(20),
}


def _words(words: Iterable[str]) -> str:
    # Longest first, so "seventeen" is not read as "seven".
    return "|".join(sorted(words, key=len, reverse=True))


_UNIT_RX = _words(_UNITS)
_DIGIT_WORD_RX = _words(_UNITS[1:10])
NUMBER = rf"(?:\d+|(?:{_words(_TENS)})(?:[\s-](?:{_DIGIT_WORD_RX}))?|{_UNIT_RX})"
_ORDINAL = (
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|(?:twenty|thirty)[\s-](?:{_words(_ORDINALS[:9])})"
    rf"|thirtieth|{_words(_ORDINALS)}|{NUMBER})"
)
_MONTH = rf"(?:{_words(_MONTHS)}|(?:{_words(_MONTH_ABBREVIATIONS)})\.?)"
_WEEKDAY = _words(_WEEKDAYS)
_HOUR = rf"(?:\d{{1,2}}|{_words(_UNITS[1:13])})"
_MINUTES = rf"(?:\d{{2}}|oh[\s-](?:{_DIGIT_WORD_RX})|{NUMBER})"
_AMPM = r"(?P<ampm>[ap])\.?\s?m\b\.?"
_PART = r"(?P<part>morning|afternoon|evening|night)"
# Words that introduce a day or time and go with it when it is cut out ("due on friday").
_PREP = r"(?:(?:due|on|at|by|for|until|till|before|around|from|starting)\s+)*"
# Words before a bare number that make it a clock time ("at 3", not "todo 3").
_CLOCK_LEAD = re.compile(r"\b(?:at|around|by)\s", re.IGNORECASE)
_AMOUNT = rf"(?P<n>{NUMBER}|an?|half an?)"
_DURATION = rf"{_AMOUNT}\s+(?P<unit>minutes?|mins?|hours?|hrs?)(?P<half>\s+and\s+a\s+half)?\b"


def number_value(text: str) -> int | None:
    """'7', 'seven', 'twenty five' or 'twenty-five' as an int."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if text in _UNITS:
        return _UNITS.index(text)
    tens, _, unit = text.replace("-", " ").partition(" ")
    if tens in _TENS and (not unit or unit in _UNITS[1:10]):
        return _TENS[tens] + (_UNITS.index(unit) if unit else 0)
    return None


def _ordinal_value(text: str) -> int | None:
    text = text.strip().lower()
    digits = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?", text)
    if digits:
        return int(digits.group(1))
    if text in _ORDINALS:
        return _ORDINALS.index(text) + 1
    if text == "thirtieth":
        return 30
    tens, _, unit = text.replace("-", " ").partition(" ")
    if tens in ("twenty", "thirty") and unit in _ORDINALS[:9]:
        return _TENS[tens] + _ORDINALS.index(unit) + 1
    return number_value(text)


def _month_value(text: str) -> int:
    text = text.lower().rstrip(".")
    return _MONTHS.index(text) + 1 if text in _MONTHS else _MONTH_ABBREVIATIONS[text]


def _amount_minutes(match: re.Match[str]) -> int | None:
    amount = match.group("n").lower()
    if amount.startswith("half"):
        value: float | None = 0.5
    elif amount in ("a", "an"):
        value = 1
    else:
        value = number_value(amount)
    if value is None:
        return None
    if match.group("half"):
        value += 0.5
    return round(value * (60 if match.group("unit").startswith("h") else 1))


@dataclass(frozen=True)
class When:
    """What a request said about time; every field None when it said nothing."""

    day: date | None = None
    end_day: date | None = None  # inclusive last day of a range ("this week")
    clock: time | None = None
    exact: datetime | None = None  # "in 2 hours": already a full instant

    @property
    def found(self) -> bool:
        return any(v is not None for v in (self.day, self.clock, self.exact))


@dataclass(frozen=True)
class _Found:
    """Pieces collected while scanning, before the hour's am/pm is settled."""

    when: When = When()
    hour_is_bare: bool = False  # "at 3": no am/pm given
    part: str | None = None  # "morning", "evening", ...


_Handler = Callable[[re.Match[str], datetime, _Found], _Found | None]


def _with_day(found: _Found, day: date, end_day: date | None = None) -> _Found | None:
    if found.when.day is not None or found.when.exact is not None:
        return None
    return replace(found, when=replace(found.when, day=day, end_day=end_day))


def _with_part(found: _Found, part: str | None) -> _Found:
    return replace(found, part=part.lower()) if part else found


def _after_minutes(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    minutes = _amount_minutes(m)
    if minutes is None or found.when.found:
        return None
    exact = now.replace(second=0, microsecond=0) + timedelta(minutes=minutes)
    return replace(found, when=When(exact=exact))


def _after_days(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    amount = m.group("n").lower()
    count = 1 if amount in ("a", "an") else number_value(amount)
    if count is None:
        return None
    per_unit = 7 if m.group("unit").startswith("week") else 1
    return _with_day(found, now.date() + timedelta(days=count * per_unit))


def _iso_day(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    try:
        return _with_day(found, date.fromisoformat(m.group("iso")))
    except ValueError:
        return None


def _calendar_day(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    day_of_month = _ordinal_value(m.group("d"))
    if day_of_month is None:
        return None
    year = int(m.group("y")) if m.group("y") else now.year
    try:
        day = date(year, _month_value(m.group("month")), day_of_month)
    except ValueError:
        return None
    if not m.group("y") and day < now.date():
        # "december 5" said in late december means next year's.
        day = day.replace(year=year + 1)
    return _with_day(found, day)


def _named_day(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    word = m.group("word").lower()
    offset = 2 if word.endswith("after tomorrow") else 1 if word == "tomorrow" else 0
    part = "night" if word == "tonight" else m.group("part")
    updated = _with_day(found, now.date() + timedelta(days=offset))
    return _with_part(updated, part) if updated else None


def _this_part(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    updated = _with_day(found, now.date())
    return _with_part(updated, m.group("part")) if updated else None


def _weekday(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    # The next such day, never today: on a Wednesday "wednesday" means next week's.
    ahead = (_WEEKDAYS.index(m.group("wd").lower()) - now.weekday()) % 7 or 7
    updated = _with_day(found, now.date() + timedelta(days=ahead))
    return _with_part(updated, m.group("part")) if updated else None


def _week(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    today = now.date()
    which = m.group("which").lower()
    if which == "next week":
        monday = today + timedelta(days=7 - today.weekday())
        return _with_day(found, monday, monday + timedelta(days=6))
    if which.endswith("weekend"):
        saturday = today + timedelta(days=max(5 - today.weekday(), 0))
        return _with_day(found, saturday, today + timedelta(days=6 - today.weekday()))
    return _with_day(found, today, today + timedelta(days=6 - today.weekday()))


def _next_days(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    count = number_value(m.group("n"))
    if not count:
        return None
    return _with_day(found, now.date(), now.date() + timedelta(days=count - 1))


def _part_alone(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    return None if found.part else _with_part(found, m.group("part"))


def _with_clock(found: _Found, hour: int, minute: int, bare: bool) -> _Found | None:
    if found.when.clock is not None or found.when.exact is not None:
        return None
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return replace(found, when=replace(found.when, clock=time(hour, minute)), hour_is_bare=bare)


def _meridiem(hour: int, ampm: str | None) -> int:
    if ampm is None or hour > 12:
        return hour
    if ampm.lower() == "p":
        return hour % 12 + 12
    return hour % 12


def _noon(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    return _with_clock(found, 0 if m.group("w").lower() == "midnight" else 12, 0, bare=False)


def _clock(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    hour = number_value(m.group("h"))
    minutes_text = m.group("cmin") or m.group("min")
    minute = 0
    if minutes_text:
        minute_value = number_value(re.sub(r"^oh[\s-]", "", minutes_text.lower()))
        if minute_value is None:
            return None
        minute = minute_value
    ampm = m.group("ampm")
    # A bare number is only a time when something says so: "at 3", "3 pm", "15:30".
    lead = m.string[m.start() : m.start("h")]
    said_time = bool(ampm or m.group("oclock") or m.group("colon") or _CLOCK_LEAD.search(lead))
    if hour is None or not said_time:
        return None
    return _with_clock(found, _meridiem(hour, ampm), minute, bare=ampm is None and hour <= 12)


def _past_or_to(m: re.Match[str], now: datetime, found: _Found) -> _Found | None:
    hour = number_value(m.group("h"))
    if hour is None:
        return None
    offset = 30 if m.group("q") == "half" else 15
    if m.group("rel") in ("to", "before"):
        hour, minute = (hour - 1) % 24, 60 - offset
    else:
        minute = offset
    ampm = m.group("ampm")
    return _with_clock(found, _meridiem(hour, ampm), minute, bare=ampm is None)


def _rule(pattern: str, handler: _Handler) -> tuple[re.Pattern[str], _Handler]:
    # (?!\w) rather than \b at the end, so a closing "p.m." keeps its dot.
    return re.compile(rf"\b{_PREP}{pattern}(?!\w)", re.IGNORECASE), handler


# Order matters: full instants first, then days, then parts of the day (which settle
# am/pm), then clock times, so "5th of december at 3" reads the day before the hour.
_RULES: tuple[tuple[re.Pattern[str], _Handler], ...] = (
    _rule(rf"(?:in|within|after)\s+{_DURATION}", _after_minutes),
    _rule(rf"in\s+(?P<n>{NUMBER}|an?)\s+(?P<unit>days?|weeks?)", _after_days),
    _rule(r"(?P<iso>\d{4}-\d{2}-\d{2})", _iso_day),
    _rule(
        rf"(?:the\s+)?(?P<month>{_MONTH})\s+(?:the\s+)?(?P<d>{_ORDINAL})(?:,?\s+(?P<y>\d{{4}}))?",
        _calendar_day,
    ),
    _rule(
        rf"(?:the\s+)?(?P<d>{_ORDINAL})\s+(?:of\s+)?(?P<month>{_MONTH})(?:,?\s+(?P<y>\d{{4}}))?",
        _calendar_day,
    ),
    _rule(
        rf"(?P<word>(?:the\s+)?day\s+after\s+tomorrow|tomorrow|today|tonight)"
        rf"(?:\s+(?:in\s+the\s+)?{_PART})?",
        _named_day,
    ),
    _rule(rf"this\s+{_PART}", _this_part),
    _rule(r"(?P<which>(?:this|the)\s+week|next\s+week|(?:this\s+)?weekend)", _week),
    _rule(rf"(?:the\s+)?next\s+(?P<n>{NUMBER})\s+days", _next_days),
    _rule(
        rf"(?:(?:this|next|coming|this\s+coming)\s+)?(?P<wd>{_WEEKDAY})"
        rf"(?:\s+(?:in\s+the\s+)?{_PART})?",
        _weekday,
    ),
    _rule(rf"(?:in\s+the|at)\s+{_PART}", _part_alone),
    _rule(r"(?:12\s+)?(?P<w>noon|midday|midnight)", _noon),
    _rule(
        rf"(?P<q>half|quarter)\s+(?P<rel>past|after|to|before)\s+(?P<h>{_HOUR})"
        rf"(?:\s*{_AMPM})?",
        _past_or_to,
    ),
    _rule(
        rf"(?P<h>{_HOUR})"
        rf"(?:(?P<colon>:)(?P<cmin>\d{{2}})|\s+(?P<min>{_MINUTES}))?"
        rf"(?:\s*{_AMPM}|\s+(?P<oclock>o'?clock))?",
        _clock,
    ),
)


def _settle_clock(found: _Found) -> When:
    """The final time of day: am/pm for a bare hour, or the default for a part of the day."""
    when = found.when
    if when.clock is None:
        if found.part is not None and when.exact is None:
            return replace(when, clock=_PART_CLOCKS[found.part])
        return when
    hour = when.clock.hour
    if found.hour_is_bare and hour < 12:
        if found.part in ("afternoon", "evening", "night") or (found.part is None and hour <= 6):
            hour += 12  # "at 3" means 3 pm: few people book things at 3 in the morning
    return replace(when, clock=when.clock.replace(hour=hour))


def extract_when(text: str, now: datetime) -> tuple[str, When]:
    """`text` without its date and time words, and what those words said."""
    found = _Found()
    for pattern, handler in _RULES:
        for match in pattern.finditer(text):
            updated = handler(match, now, found)
            if updated is not None:
                found = updated
                text = f"{text[: match.start()]} {text[match.end() :]}"
                break
    return " ".join(text.split()), _settle_clock(found)


def extract_duration(text: str) -> tuple[str, int | None]:
    """`text` without a "for 30 minutes" phrase, and the minutes it said."""
    for match in _DURATION_RX.finditer(text):
        minutes = _amount_minutes(match)
        if minutes:
            return " ".join(f"{text[: match.start()]} {text[match.end() :]}".split()), minutes
    return text, None


_DURATION_RX = re.compile(rf"\bfor\s+{_DURATION}", re.IGNORECASE)


def instant(when: When, now: datetime, default_clock: time = time(9)) -> datetime | None:
    """The moment `when` names, in `now`'s offset; a day alone gets `default_clock`."""
    if when.exact is not None:
        return when.exact
    if not when.found:
        return None
    moment = datetime.combine(when.day or now.date(), when.clock or default_clock, now.tzinfo)
    if when.day is None and moment <= now:
        moment += timedelta(days=1)  # "at 3 pm" said at 4 pm means tomorrow
    return moment


def iso_instant(when: When, now: datetime, default_clock: time = time(9)) -> str | None:
    moment = instant(when, now, default_clock)
    return moment.isoformat(timespec="seconds") if moment else None


def iso_due(when: When, now: datetime) -> str | None:
    """A date when only a day was said, a date-time when a time was too."""
    if when.clock is None and when.exact is None:
        return when.day.isoformat() if when.day else None
    return iso_instant(when, now)
