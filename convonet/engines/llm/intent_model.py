"""The embedded LLM: a deterministic grammar that maps one spoken request to one tool call.

It needs no model files and no network, so the product runs offline and tests are exact.
Each tool has a few phrasings (regular expressions over the normalized request) and a
builder that turns a match into arguments. Rules are tried in order; the first whose tool
is offered, whose builder accepts the match and whose arguments validate, wins. Once the
tools have run, the reply is the `say` sentences of their results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall, ToolMessage
from pydantic import ValidationError

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import ToolSpec
from convonet.engines.llm.base import ChatModel, TextSink
from convonet.engines.llm.intent_dates import (
    NUMBER,
    When,
    extract_duration,
    extract_when,
    iso_due,
    iso_instant,
    number_value,
)

Args = dict[str, Any]

NOT_UNDERSTOOD = (
    "Sorry, I didn't understand that. You can say things like add a todo to buy milk, "
    "or what's on my calendar today."
)
HELP = (
    "I can manage your todos, reminders, calendar and teams, and put you through to a "
    "person, for example: remind me to call mom tomorrow at 5 pm."
)
_TOOL_FAILED = "Sorry, something went wrong with that."
_PROMPT = "How can I help you?"

_I = re.IGNORECASE

# Speech-to-text adds politeness and hesitation around the request; none of it matters.
_FILLER_START = re.compile(
    r"^(?:hey|hi|hello|ok|okay|so|um+|uh+|er+|well|oh|assistant|just|now|alright|"
    r"can you|could you|would you|will you|can i|could i|may i|i want to|i wanna|"
    r"i'?d like to|i would like to|i want you to|i need you to|i'?d like you to|"
    r"go ahead and|let'?s|let me)\b[\s,]*",
    _I,
)
_FILLER_END = re.compile(
    r"[\s,]*\b(?:for me|thanks|thank you|if you can|if possible|right now|now)$", _I
)
_FILLER_ANYWHERE = re.compile(r"\b(?:please|kindly)\b", _I)

_PRIO = r"(?:low|medium|normal|high|important|urgent|critical|top)"
_PRIORITIES = {"normal": "medium", "important": "high", "critical": "urgent", "top": "urgent"}
_ROLE = r"(?:owner|admin|administrator|member|viewer)"
_TODO = r"(?:to-?dos?|to dos?|tasks?)"
_LIST = (
    r"(?:(?:my|the)\s+)?(?:(?:to-?do|to do|task|shopping|grocery)\s+)?"
    r"(?:list|to-?dos|to dos|tasks)"
)
# Words that make a phrase a calendar entry rather than a todo ("rename the meeting ...").
_EVENT_WORDS = re.compile(
    r"\b(?:event|meeting|appointment|lunch|dinner|breakfast|interview|sync|standup|"
    r"stand-up|party|conference|coffee|checkup|check-up|call with)s?\b",
    _I,
)
_CALENDAR = r"(?:on|to|in|into|onto)\s+(?:my|the)\s+calendar"
_TEAM = r"(?:the\s+)?(?:team\s+)?(?P<team>.+?)(?:\s+team)?"
_MUTATING = (
    r"(?:add|create|make|new|put|set|delete|remove|cancel|clear|move|change|update|edit|"
    r"rename|mark|complete|finish|check off|tick off|cross off|assign|schedule|book|remind|"
    r"i need|i have|reschedule|push)\b"
)
_VAGUE = {"it", "that", "this", "them", "all", "everything", "one", "those", "all of them"}
_NOT_A_TEAM = re.compile(r"\b(?:list|to-?dos?|to dos?|tasks?|calendar|reminders?)$", _I)


@dataclass(frozen=True)
class _Request:
    text: str
    now: datetime
    # After a failed transfer, "try again" means that department.
    last_failed_department: str = ""


Builder = Callable[[re.Match[str], _Request], Args | None]


@dataclass(frozen=True)
class _Rule:
    tool: str
    build: Builder
    patterns: tuple[re.Pattern[str], ...]


def _rule(tool: str, build: Builder, *patterns: str) -> _Rule:
    return _Rule(tool, build, tuple(re.compile(p, _I) for p in patterns))


# ----------------------------------------------------------------------------- helpers


def _clean(text: str) -> str:
    return " ".join(text.split()).strip(" ,.;:-")


def _strip(text: str, leading: str = "", trailing: str = "") -> str:
    """`text` without the words matched by `leading` / `trailing`, repeatedly."""
    text = _clean(text)
    if leading:
        text = re.sub(rf"^(?:(?:{leading})\b\s*)+", "", text, flags=_I)
    if trailing:
        text = re.sub(rf"(?:\s*\b(?:{trailing}))+$", "", text, flags=_I)
    return _clean(text)


def _title(text: str) -> str:
    """A todo or event title from the words left over: no leading articles or links."""
    return _strip(text, r"the|a|an|to|that|called|named|titled|saying", r"to|on|at|for|by")


def _priority_name(word: str | None) -> str | None:
    return _PRIORITIES.get(word.lower(), word.lower()) if word else None


_PRIORITY_PHRASE = re.compile(
    rf"\b(?:(?:with|at|as|and)\s+)?(?:an?\s+)?(?:priority\s+(?:is\s+|of\s+|to\s+)?(?P<a>{_PRIO})"
    rf"|(?P<b>{_PRIO})[\s-]priority|(?:it'?s|it\s+is|make\s+it)\s+(?P<c>{_PRIO}))\b",
    _I,
)


def _take_priority(text: str) -> tuple[str, str | None]:
    match = _PRIORITY_PHRASE.search(text)
    if not match:
        return text, None
    word = match.group("a") or match.group("b") or match.group("c")
    return _clean(text[: match.start()] + " " + text[match.end() :]), _priority_name(word)


_DESCRIPTION = re.compile(
    r"\s+(?:(?:with|and)\s+(?:the\s+|a\s+)?)?(?:description|notes?|details)\s*:?\s+(?P<d>.+)$", _I
)


def _take_description(text: str) -> tuple[str, str]:
    match = _DESCRIPTION.search(text)
    if not match:
        return text, ""
    return text[: match.start()], _clean(match.group("d"))


def _take(text: str, pattern: re.Pattern[str], group: str) -> tuple[str, str | None]:
    """`text` without the first match of `pattern`, and that match's `group`."""
    match = pattern.search(text)
    if not match:
        return text, None
    return _clean(text[: match.start()] + " " + text[match.end() :]), _clean(match.group(group))


def _number(text: str) -> int | None:
    text = _strip(text, r"number|no\.?|#")
    return number_value(text) if re.fullmatch(NUMBER, text, _I) else None


def _ref(text: str, nouns: str, id_key: str, match_key: str) -> Args | None:
    """A reference to one row: its number, or words from its text. None if too vague."""
    text = _strip(
        text,
        rf"the|my|that|this|a|an|{nouns}|number|called|named|titled|about|to|for|#",
        rf"{nouns}",
    )
    if not text or text.lower() in _VAGUE:
        return None
    number = _number(text)
    return {id_key: number} if number is not None else {match_key: text}


def _todo_ref(text: str) -> Args | None:
    return _ref(text, r"to-?dos?|to dos?|tasks?|items?", "todo_id", "title_match")


def _reminder_ref(text: str) -> Args | None:
    return _ref(text, r"reminders?", "reminder_id", "text_match")


def _event_ref(text: str) -> Args | None:
    text = _strip(text, r"the|my|calendar|event", r"from my calendar|on my calendar|event")
    if not text or text.lower() in _VAGUE:
        return None
    # Listed event ids are opaque strings; anything with a digit and no spaces is one.
    if re.fullmatch(r"[\w-]*\d[\w-]*", text):
        return {"event_id": text}
    number = _number(text)
    return {"event_id": str(number)} if number is not None else {"title_match": text}


def _team_name(text: str | None) -> str | None:
    name = _strip(text or "", r"the|team", r"team")
    if not name or name.lower() in ("my", "team", "teams") or _NOT_A_TEAM.search(name):
        return None
    return name


def _role(word: str) -> str:
    word = word.lower()
    return "admin" if word == "administrator" else word


def _range(when: When) -> Args:
    args: Args = {}
    if when.day:
        args["day"] = when.day.isoformat()
    if when.end_day:
        args["end_day"] = when.end_day.isoformat()
    return args


_SPLIT_TARGET = re.compile(r"\s(?:to|for|until|till)\s", _I)


def _split_target(body: str, request: _Request) -> tuple[str, When] | None:
    """'the dentist appointment to friday at 3' -> ('the dentist appointment', friday 3 pm).

    Tries each 'to' from the right, so a 'to' inside the title stays in the title.
    """
    for match in reversed(list(_SPLIT_TARGET.finditer(body))):
        rest, when = extract_when(body[match.end() :], request.now)
        if when.found and not rest:
            return _strip(body[: match.start()], "", r"back|forward|up|out"), when
    return None


def _mentions_other_kind(text: str) -> bool:
    return bool(re.search(rf"\b(?:reminders?|{_TODO}|due)\b", text, _I))


# ---------------------------------------------------------------------------- builders


_REASON = re.compile(r"\s(?:because|since|as|about|regarding|for|to)\s+(?P<r>.+)$", _I)


def _transfer(m: re.Match[str], request: _Request) -> Args:
    dest = m.groupdict().get("dest") or ""
    dest, reason = _take(dest, _REASON, "r")
    department = _strip(
        dest,
        r"a|an|the|some|real|live|actual|human|person|agent|someone|somebody|representative|"
        r"rep|operator|people|staff|in|from|at|on|of|your|my",
        r"department|dept|team|desk|group|people|person|agent|someone",
    )
    if not department or len(department.split()) > 3:
        department = "general"
    return {"department": department.lower(), "reason": (reason or request.text)[:300]}


def _try_again(m: re.Match[str], request: _Request) -> Args | None:
    if not request.last_failed_department:
        return None
    return {"department": request.last_failed_department, "reason": "trying again"}


def _message(m: re.Match[str], request: _Request) -> Args:
    args: Args = {"message": _clean(m.group("msg") or "")}
    if m.group("dept"):
        args["department"] = m.group("dept").lower()
    return args


def _no_args(m: re.Match[str], request: _Request) -> Args:
    return {}


def _team_only(m: re.Match[str], request: _Request) -> Args | None:
    team = _team_name(m.group("team"))
    return {"team": team} if team else None


def _create_team(m: re.Match[str], request: _Request) -> Args | None:
    name = _team_name(m.group("name"))
    if not name:
        return None
    args: Args = {"name": name}
    if m.groupdict().get("desc"):
        args["description"] = _clean(m.group("desc"))
    return args


def _member(m: re.Match[str], request: _Request) -> Args | None:
    team = _team_name(m.group("team"))
    user = _strip(m.group("user"), r"the|user|member", r"'s")
    if not team or not user or re.search(rf"\b{_TODO}\b|\breminders?\b", user, _I):
        return None
    args: Args = {"team": team, "user": user}
    if m.groupdict().get("role"):
        args["role"] = _role(m.group("role"))
    return args


def _search_users(m: re.Match[str], request: _Request) -> Args | None:
    query = _strip(m.group("q"), r"a|the|users?|person|people|colleagues?|named|called|email")
    if not query or re.search(rf"\b(?:{_TODO}|reminders?|calendar|events?|teams?)\b", query, _I):
        return None
    return {"query": query}


_TEAM_PHRASE = re.compile(
    r"\b(?:for|to|in|on)\s+(?:the\s+)?(?:team\s+(?P<t1>[\w-]+)|(?P<t2>[\w-]+(?:\s+[\w-]+)?)\s+team)\b",
    _I,
)
_ASSIGNEE = re.compile(
    r"\s(?:and\s+)?(?:assigned|assign\s+it|give\s+it|for)\s+to\s+(?P<a>.+)$|\sassigned\s+(?P<b>.+)$",
    _I,
)


def _team_todo(m: re.Match[str], request: _Request) -> Args | None:
    rest = m.group("rest")
    team: str | None = m.groupdict().get("team")
    if team is None:
        phrase = _TEAM_PHRASE.search(rest)
        if not phrase:
            return None
        team = phrase.group("t1") or phrase.group("t2")
        rest = rest[: phrase.start()] + " " + rest[phrase.end() :]
    rest, priority = _take_priority(rest)
    rest, when = extract_when(rest, request.now)
    assignee = m.groupdict().get("assignee")
    if assignee is None:
        match = _ASSIGNEE.search(rest)
        if match:
            assignee = match.group("a") or match.group("b")
            rest = rest[: match.start()]
    team = _team_name(team)
    if not team:
        return None
    args: Args = {"team": team, "title": _title(rest), "priority": priority or "medium"}
    if assignee:
        args["assignee"] = _strip(assignee, r"the|user")
    due = iso_due(when, request.now)
    if due:
        args["due"] = due
    return args


def _create_todo(m: re.Match[str], request: _Request) -> Args:
    rest, description = _take_description(m.group("rest"))
    rest, priority = _take_priority(rest)
    rest, when = extract_when(rest, request.now)
    rest = re.sub(rf"\s+(?:to|on|onto|in)\s+{_LIST}$", "", rest, flags=_I)
    args: Args = {
        "title": _title(rest),
        "priority": priority or _priority_name(m.groupdict().get("prio")) or "medium",
    }
    if description:
        args["description"] = description
    due = iso_due(when, request.now)
    if due:
        args["due"] = due
    return args


def _list_todos(m: re.Match[str], request: _Request) -> Args:
    text = request.text.lower()
    args: Args = {}
    if re.search(r"\b(?:done|completed|finished|complete|checked off)\b", text):
        args["status"] = "done"
    elif re.search(r"\ball\b", text) and not re.search(r"\b(?:open|pending)\b", text):
        args["status"] = "all"
    for pattern, due in (
        (r"\boverdue\b|\blate\b|\bpast due\b", "overdue"),
        (r"\bweek\b", "this_week"),
        (r"\btomorrow\b", "tomorrow"),
        (r"\btoday\b|\btonight\b", "today"),
    ):
        if re.search(pattern, text):
            args["due"] = due
            break
    priority = re.search(rf"\b{_PRIO}\b", text)
    if priority:
        args["priority"] = _priority_name(priority.group(0))
    return args


def _update_todo_priority(m: re.Match[str], request: _Request) -> Args | None:
    ref = _todo_ref(m.group("ref"))
    if ref is None or _EVENT_WORDS.search(m.group("ref")):
        return None
    return ref | {"priority": _priority_name(m.group("prio"))}


def _update_todo_due(m: re.Match[str], request: _Request) -> Args | None:
    target = _split_target(m.group("body"), request)
    if target is None:
        return None
    ref = _todo_ref(target[0])
    return ref | {"due": iso_due(target[1], request.now)} if ref else None


def _update_todo_title(m: re.Match[str], request: _Request) -> Args | None:
    ref = _todo_ref(m.group("ref"))
    return ref | {"new_title": _title(m.group("new"))} if ref else None


def _update_todo_description(m: re.Match[str], request: _Request) -> Args | None:
    ref = _todo_ref(m.group("ref"))
    return ref | {"description": _clean(m.group("d"))} if ref else None


def _todo_ref_only(m: re.Match[str], request: _Request) -> Args | None:
    if _EVENT_WORDS.search(m.group("ref")) or re.search(r"\breminders?\b", m.group("ref"), _I):
        return None
    return _todo_ref(m.group("ref"))


def _reminder_text(text: str) -> str:
    return _strip(text, r"to|about|that|of|for|saying|called|me", r"to|for|at|on")


def _remind_me(m: re.Match[str], request: _Request) -> Args | None:
    rest, when = extract_when(m.group("rest"), request.now)
    if not when.found:
        return None  # "remind me to buy milk" with no time is a todo
    return {"text": _reminder_text(rest), "remind_at": iso_instant(when, request.now)}


# An explicit "set a reminder" with no time at all is for the next 9 AM.
_NEXT_NINE = When(clock=time(9))


def _set_reminder(m: re.Match[str], request: _Request) -> Args | None:
    rest, when = extract_when(m.group("rest"), request.now)
    remind_at = iso_instant(when if when.found else _NEXT_NINE, request.now)
    return {"text": _reminder_text(rest), "remind_at": remind_at}


def _list_range(m: re.Match[str], request: _Request) -> Args:
    return _range(extract_when(request.text, request.now)[1])


_RENAME_TO = re.compile(r"^(?P<ref>.+?)\s+to\s+(?:say\s+|read\s+)?(?P<new>.+)$", _I)


def _update_reminder(m: re.Match[str], request: _Request) -> Args | None:
    body = m.group("body")
    target = _split_target(body, request)
    if target is not None:
        ref = _reminder_ref(target[0])
        return ref | {"remind_at": iso_instant(target[1], request.now)} if ref else None
    rename = _RENAME_TO.match(body)
    if rename is None:
        return None
    ref = _reminder_ref(rename.group("ref"))
    return ref | {"text": _reminder_text(rename.group("new"))} if ref else None


def _reminder_ref_only(m: re.Match[str], request: _Request) -> Args | None:
    return _reminder_ref(m.group("ref"))


# A number after "at" is a time we could not read, never a place.
_LOCATION = re.compile(r"\s+at\s+(?P<loc>\D.*)$", _I)


def _create_event(m: re.Match[str], request: _Request, need_time: bool) -> Args | None:
    rest = re.sub(rf"\b{_CALENDAR}\b", " ", m.group("rest"), flags=_I)
    rest, minutes = extract_duration(rest)
    rest, when = extract_when(rest, request.now)
    if need_time and not when.found:
        return None
    rest, location = _take(rest, _LOCATION, "loc")
    title = _strip(_title(rest), r"event|calendar event|called|named|titled")
    args: Args = {"title": title, "starts_at": iso_instant(when, request.now)}
    if minutes:
        args["duration_minutes"] = minutes
    if location:
        args["location"] = location
    return args


def _schedule(m: re.Match[str], request: _Request) -> Args | None:
    return _create_event(m, request, need_time=False)


def _add_event(m: re.Match[str], request: _Request) -> Args | None:
    if not _EVENT_WORDS.search(m.group("rest")):
        return None
    return _create_event(m, request, need_time=True)


def _move_event(m: re.Match[str], request: _Request) -> Args | None:
    target = _split_target(m.group("body"), request)
    if target is None or _mentions_other_kind(target[0]):
        return None
    ref = _event_ref(target[0])
    return ref | {"starts_at": iso_instant(target[1], request.now)} if ref else None


def _rename_event(m: re.Match[str], request: _Request) -> Args | None:
    if not _EVENT_WORDS.search(m.group("ref")):
        return None
    ref = _event_ref(m.group("ref"))
    return ref | {"new_title": _title(m.group("new"))} if ref else None


def _relocate_event(m: re.Match[str], request: _Request) -> Args | None:
    ref = _event_ref(m.group("ref"))
    return ref | {"location": _clean(m.group("loc"))} if ref else None


def _delete_event(m: re.Match[str], request: _Request) -> Args | None:
    if _mentions_other_kind(m.group("ref")):
        return None
    return _event_ref(m.group("ref"))


def _named_event(m: re.Match[str], request: _Request) -> Args | None:
    return _delete_event(m, request) if _EVENT_WORDS.search(m.group("ref")) else None


# ----------------------------------------------------------------------------- the table

_TODO_VERB = r"(?:add|create|make|new|put|write down|jot down|start|another)"
_EVENT_MOVE = r"(?:move|reschedule|push|shift|postpone|delay|bring forward|change)"
_DELETE = r"(?:delete|remove|erase|drop|get rid of|cancel|clear|scrap|call off)"

# Specific phrasings before general ones; destructive rules need an explicit noun.
_RULES: tuple[_Rule, ...] = (
    _rule("list_departments", _no_args, r"^(?!transfer|connect|put).*\bdepartments\b"),
    _rule(
        "transfer_to_agent",
        _transfer,
        r"^(?:transfer|connect|put|forward|route|patch)\s+me\s+(?:through\s+)?(?:to|with)\s+"
        r"(?P<dest>.+)$",
        r"^(?:i\s+(?:need|want|would like|'d like)\s+to\s+)?(?:talk|speak|chat)\s+(?:to|with)\s+"
        r"(?!you\b|yourself\b|the assistant\b)(?P<dest>.+)$",
        r"^(?:get|give|find)\s+me\s+(?P<dest>(?:an?\s+)?(?:real\s+|live\s+)?"
        r"(?:person|human|agent|representative|operator|someone)\b.*)$",
        r"^(?:an?\s+)?(?:real\s+|live\s+)?(?:person|human|agent|representative|operator)$",
        r"^(?:transfer|connect)\s+me$",
    ),
    _rule(
        "transfer_to_agent",
        _try_again,
        r"^(?:please\s+)?(?:try|transfer me|call them|ring them)\s+again(?:\s+please)?$",
    ),
    _rule(
        "take_message",
        _message,
        r"^(?:please\s+|can you\s+|could you\s+)?(?:take|leave|pass on)\s+(?:a\s+|my\s+)?"
        r"message(?:\s+for\s+(?P<dept>sales|support|billing|general))?\s*[:,-]?\s*"
        r"(?:saying\s+|that\s+)?(?P<msg>.+)$",
    ),
    _rule(
        "list_my_teams",
        _no_args,
        r"^(?!create|make|add|new|start|delete|remove).*\b(?:my\s+teams|teams\s+(?:am\s+i|i'?m|"
        r"do\s+i|i\s+belong)|(?:what|which|list|show)\s+teams)\b",
    ),
    _rule(
        "list_team_members",
        _team_only,
        rf"^(?:who(?:'s|s|\s+is|\s+are)?\s+(?:in|on|part\s+of|(?:the\s+)?members?\s+of)|"
        rf"(?:list|show|tell\s+me|give\s+me|read)\s+(?:me\s+)?(?:all\s+)?(?:the\s+)?"
        rf"(?:members|people)\s+(?:of|in|on)|(?:the\s+)?members\s+(?:of|in)|who\s+belongs\s+to)"
        rf"\s+{_TEAM}$",
    ),
    _rule(
        "create_team_todo",
        _team_todo,
        rf"^{_TODO_VERB}\s+(?:an?\s+)?(?:new\s+)?(?:team\s+)?(?:to-?do|to do|task)\s+(?P<rest>.+)$",
        rf"^assign\s+(?P<rest>.+?)\s+to\s+(?P<assignee>.+?)\s+(?:in|on|for)\s+{_TEAM}$",
    ),
    _rule(
        "create_team",
        _create_team,
        r"^(?:create|make|start|set\s+up|form|add|new)\s+(?:me\s+)?(?:an?\s+)?(?:new\s+)?team\s+"
        r"(?:called\s+|named\s+)?(?P<name>.+?)(?:\s+(?:with\s+(?:the\s+)?description|"
        r"described\s+as|for)\s+(?P<desc>.+))?$",
        r"^(?:create|make|start|set\s+up|form)\s+(?:an?\s+)?(?:new\s+)?(?P<name>\S+(?:\s+\S+)?)"
        r"\s+team$",
    ),
    _rule(
        "change_member_role",
        _member,
        rf"^make\s+(?P<user>.+?)\s+(?:an?\s+)?(?P<role>{_ROLE})\s+(?:of|in|on|for)\s+{_TEAM}$",
        rf"^(?:change|set|update|switch)\s+(?:the\s+role\s+of\s+)?(?P<user>.+?)(?:'s|s')?"
        rf"(?:\s+role)?\s+(?:in|on|for)\s+{_TEAM}\s+to\s+(?:an?\s+)?(?P<role>{_ROLE})$",
        rf"^(?:promote|demote)\s+(?P<user>.+?)\s+to\s+(?:an?\s+)?(?P<role>{_ROLE})\s+"
        rf"(?:of|in|on|for)\s+{_TEAM}$",
    ),
    # Reminders come before todos: "remind me to X at 5" is a reminder, without a time a todo.
    _rule("create_reminder", _remind_me, r"^remind\s+me\s+(?P<rest>.+)$"),
    _rule(
        "create_reminder",
        _set_reminder,
        r"^(?:set|create|add|make|schedule|new)\s+(?:me\s+)?(?:an?\s+)?(?:new\s+)?reminder\b"
        r"\s*(?P<rest>.*)$",
        r"^reminder\s+(?P<rest>(?:to|about|that|for)\s.+)$",
    ),
    _rule(
        "list_reminders",
        _list_range,
        rf"^(?!{_MUTATING}|rename|reminder\s+(?:to|for|about)).*\breminders?\b",
    ),
    _rule(
        "update_reminder",
        _update_reminder,
        r"^(?:move|change|update|reschedule|push|shift|set|edit|postpone|rename|make)\s+"
        r"(?P<body>.*\breminders?\b.*)$",
    ),
    _rule(
        "delete_reminder",
        _reminder_ref_only,
        rf"^(?:{_DELETE}|turn off)\s+(?P<ref>.*\breminders?\b.*)$",
    ),
    _rule(
        "create_todo",
        _create_todo,
        rf"^{_TODO_VERB}\s+(?:me\s+)?(?:an?\s+|another\s+)?(?:new\s+)?"
        rf"(?:(?P<prio>{_PRIO})(?:[\s-]priority)?\s+)?(?:to-?do|to do|task|todo item)"
        rf"(?:\s+(?:item|called|named|saying|that says|to|for me to))?\s+(?P<rest>.+)$",
        rf"^(?:add|put|write|stick)\s+(?P<rest>.+?)\s+(?:to|on|onto|in)\s+{_LIST}$",
    ),
    _rule(
        "update_todo",
        _update_todo_priority,
        rf"^(?:change|set|update|make|raise|lower|bump|mark)\s+(?:the\s+)?priority\s+"
        rf"(?:of|on|for)\s+(?P<ref>.+?)\s+(?:to|as)\s+(?P<prio>{_PRIO})(?:\s+priority)?$",
        rf"^(?:set|change|update|make|mark)\s+(?P<ref>.+?)(?:'s)?(?:\s+priority)?"
        rf"(?:\s+(?:to|as))?\s+(?:an?\s+)?(?P<prio>{_PRIO})(?:\s+priority)?$",
        rf"^(?P<ref>(?:to-?do|to do|task)\s+.+?)\s+(?:priority|to)\s+(?P<prio>{_PRIO})"
        rf"(?:\s+priority)?$",
    ),
    _rule(
        "list_todos",
        _list_todos,
        rf"^(?!{_MUTATING}).*\b(?:to-?dos?|to dos?|tasks?|(?:my|the|to-?do|to do|task)\s+list)\b",
        rf"^(?!{_MUTATING})(?:what|whats|what's|anything|is anything|is there anything|show|list"
        rf"|tell)\b.*\b(?:due|overdue)\b",
    ),
    _rule(
        "update_todo",
        _update_todo_due,
        r"^(?:move|change|set|push|update|postpone|shift)\s+(?:the\s+)?due\s+date\s+"
        r"(?:of|for|on)\s+(?P<body>.+)$",
        r"^(?:make|set)\s+(?P<body>.+?\s+due\s+.+)$",
        r"^(?:move|push|postpone|shift)\s+(?P<body>(?:the\s+|my\s+)?(?:to-?do|to do|task)\s+.+)$",
    ),
    _rule(
        "update_todo",
        _update_todo_description,
        r"^(?:change|set|update|add)\s+(?:the\s+|a\s+)?(?:description|notes?)\s+"
        r"(?:of|on|for|to)\s+(?P<ref>.+?)\s+(?:to|as|saying)\s+(?P<d>.+)$",
    ),
    _rule(
        "complete_todo",
        _todo_ref_only,
        r"^(?:mark|set|tick|check)\s+(?P<ref>.+?)\s+(?:as\s+)?(?:done|complete|completed|finished"
        r"|off)(?:\s+(?:on|from)\s+(?:my|the)\s+list)?$",
        r"^(?:i\s+)?(?:have\s+|'ve\s+|just\s+)*(?:finished|completed|did|done with)\s+(?P<ref>.+)$",
        r"^i'?m\s+(?:done|finished)\s+with\s+(?P<ref>.+)$",
        r"^(?:complete|finish|check off|tick off|cross off)\s+(?P<ref>.+?)"
        r"(?:\s+(?:off|from)\s+(?:my|the)\s+list)?$",
    ),
    _rule(
        "delete_todo",
        _todo_ref_only,
        rf"^{_DELETE}\s+(?:the\s+|my\s+)?(?:to-?do|to do|task|item)s?\s+(?P<ref>.+)$",
        rf"^(?:{_DELETE}|take|cross)\s+(?P<ref>.+?)\s+(?:off|from|out of)\s+{_LIST}$",
        rf"^{_DELETE}\s+(?P<ref>.+?\s+(?:to-?do|to do|task))$",
    ),
    _rule(
        "create_event",
        _schedule,
        r"^(?:schedule|book|arrange|set\s+up|plan|organi[sz]e)\s+(?P<rest>.+)$",
        rf"^(?:add|put|create|make|new|enter)\s+(?P<rest>.+?\s+{_CALENDAR}\b.*)$",
    ),
    _rule("create_event", _add_event, r"^(?:add|put|create|make|new)\s+(?P<rest>.+)$"),
    _rule(
        "list_events",
        _list_range,
        rf"^(?!{_MUTATING}).*\b(?:calendar|schedule|agenda|meetings|appointments|events|plans"
        rf"|busy|free)\b",
        r"^what\s+(?:do\s+i\s+have|have\s+i\s+got|is\s+happening|'?s\s+happening)\b",
    ),
    _rule(
        "update_event",
        _rename_event,
        r"^(?:rename|retitle|change\s+the\s+(?:title|name)\s+of)\s+(?P<ref>.+?)\s+(?:to|as)\s+"
        r"(?P<new>.+)$",
    ),
    _rule(
        "update_event",
        _relocate_event,
        r"^(?:change|move|set|update)\s+(?:the\s+)?(?:location|place|venue)\s+(?:of|for)\s+"
        r"(?P<ref>.+?)\s+to\s+(?P<loc>.+)$",
    ),
    _rule("update_event", _move_event, rf"^{_EVENT_MOVE}\s+(?P<body>.+)$"),
    _rule(
        "update_todo",
        _update_todo_title,
        r"^(?:rename|retitle|change\s+the\s+(?:title|name)\s+of)\s+(?P<ref>.+?)\s+(?:to|as)\s+"
        r"(?P<new>.+)$",
    ),
    _rule(
        "delete_event",
        _delete_event,
        rf"^{_DELETE}\s+(?:the\s+|my\s+)?(?:calendar\s+)?event\s+(?P<ref>.+)$",
        rf"^(?:{_DELETE}|take)\s+(?P<ref>.+?)\s+(?:from|off)\s+(?:my|the)\s+calendar$",
    ),
    _rule("delete_event", _named_event, rf"^{_DELETE}\s+(?P<ref>.+)$"),
    _rule(
        "add_team_member",
        _member,
        rf"^(?:add|invite|put|bring)\s+(?P<user>.+?)\s+(?:to|into|in|on)\s+{_TEAM}"
        rf"(?:\s+as\s+(?:an?\s+)?(?P<role>{_ROLE}))?$",
    ),
    _rule(
        "remove_team_member",
        _member,
        rf"^(?:remove|kick|take|drop)\s+(?P<user>.+?)\s+(?:out\s+)?(?:from|of|off)\s+{_TEAM}$",
    ),
    _rule(
        "search_users",
        _search_users,
        r"^(?:find|search(?:\s+for)?|look\s+up|lookup|look\s+for)\s+(?P<q>.+)$",
    ),
    _rule(
        "create_todo",
        _create_todo,
        r"^(?:i\s+need\s+to|i\s+have\s+to|i\s+must|i'?ve\s+got\s+to|i\s+got\s+to|i\s+gotta|"
        r"don'?t\s+let\s+me\s+forget\s+to|remember\s+to|remind\s+me\s+to)\s+(?P<rest>.+)$",
        # Last resort for "add X": adding a todo is harmless if it was meant otherwise.
        r"^add\s+(?P<rest>.+)$",
    ),
)

_SMALL_TALK: tuple[tuple[re.Pattern[str], Callable[[str], str]], ...] = (
    (
        re.compile(
            r"^(?:hello|hi|hey|hiya|howdy|greetings|good\s+(?:morning|afternoon|evening)|yo)"
            r"(?:\s+(?:there|assistant|convonet|everyone))?$",
            _I,
        ),
        lambda name: f"Hello {name}! How can I help you?".replace(" !", "!"),
    ),
    (
        re.compile(
            r"^(?:ok\s+|great\s+|perfect\s+|awesome\s+)?(?:thanks|thank\s+you|thx|cheers)"
            r"(?:\s+(?:so\s+much|very\s+much|a\s+lot))?$",
            _I,
        ),
        lambda name: "You're welcome! Anything else?",
    ),
    (
        re.compile(
            r"^(?:bye|goodbye|good\s+bye|bye\s+bye|see\s+you|see\s+ya|good\s+night|that'?s\s+all"
            r"|that\s+is\s+all|that'?s\s+it|nothing\s+else|no\s+thanks|talk\s+to\s+you\s+later)"
            r"(?:\s+(?:for\s+now|for\s+today|thanks|thank\s+you|bye))?$",
            _I,
        ),
        lambda name: f"Goodbye {name}!".replace(" !", "!"),
    ),
    (
        re.compile(
            r"^(?:help|help\s+me|what\s+can\s+you\s+do|what\s+do\s+you\s+do|what\s+can\s+i\s+"
            r"(?:say|ask)|how\s+does\s+this\s+work|what\s+are\s+you)$",
            _I,
        ),
        lambda name: HELP,
    ),
)


# ------------------------------------------------------------------------------ the model


def _normalize(text: str) -> str:
    """One line of words: no quotes, no sentence punctuation, no politeness words."""
    text = text.replace("\u2019", "'")
    text = re.sub(r"[\"\u201c\u201d!?;]", " ", text)
    text = re.sub(r"[,:](?!\d)|(?<!\d)[,:]", " ", text)  # keeps "15:30" and "1,000"
    text = _FILLER_ANYWHERE.sub(" ", text)
    return " ".join(text.split()).rstrip(". ")


def _strip_fillers(text: str) -> str:
    while True:
        shorter = _FILLER_END.sub("", _FILLER_START.sub("", text, count=1), count=1).strip()
        if not shorter or shorter == text:
            return text
        text = shorter


def _small_talk(text: str, context: TurnContext) -> str | None:
    first_name = context.user_name.split()[0] if context.user_name.split() else ""
    for pattern, reply in _SMALL_TALK:
        if pattern.match(text):
            return reply(first_name)
    return None


def _now(context: TurnContext) -> datetime:
    now = datetime.fromisoformat(context.now_iso)
    if now.tzinfo is not None:
        return now  # keep the caller's offset: every date we produce is written in it
    try:
        return now.replace(tzinfo=ZoneInfo(context.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return now.replace(tzinfo=UTC)


def _tool_call(text: str, tools: Sequence[ToolSpec], context: TurnContext) -> ToolCall | None:
    offered = {spec.name: spec for spec in tools}
    request = _Request(text, _now(context), context.last_failed_department)
    for rule in _RULES:
        spec = offered.get(rule.tool)
        if spec is None:
            continue
        for pattern in rule.patterns:
            match = pattern.search(text)
            args = rule.build(match, request) if match else None
            if args is None:
                continue
            try:
                valid = spec.args.model_validate(args)
            except ValidationError:
                continue  # e.g. an empty title: let a later rule try
            return ToolCall(
                name=spec.name,
                args=valid.model_dump(exclude_unset=True),
                id=f"call_{context.turn}_0",
            )
    return None


def _content_text(content: str | list[str | dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    parts = (p if isinstance(p, str) else str(p.get("text", "")) for p in content)
    return " ".join(parts)


def _spoken(message: ToolMessage) -> str:
    """The sentence to speak for one tool result; never the raw JSON."""
    try:
        result = ToolResult.model_validate_json(_content_text(message.content))
    except ValidationError:
        return _TOOL_FAILED if message.status == "error" else "Done."
    say = result.say.strip()
    if not say:
        return "Done." if result.ok else _TOOL_FAILED
    return say if say[-1] in ".!?" else f"{say}."


def _trailing_tool_messages(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append(message)
    return results[::-1]


class IntentModel(ChatModel):
    """Rule-based stand-in for an LLM: one tool call per request, or a short spoken reply."""

    name = "intent"

    async def respond(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[ToolSpec],
        context: TurnContext,
        on_text: TextSink | None = None,
    ) -> AIMessage:
        reply = self._reply(messages, tools, context)
        # The whole reply exists at once, so it is handed over in one piece.
        if on_text is not None and isinstance(reply.content, str) and reply.content:
            await on_text(reply.content)
        return reply

    def _reply(
        self, messages: Sequence[BaseMessage], tools: Sequence[ToolSpec], context: TurnContext
    ) -> AIMessage:
        results = _trailing_tool_messages(messages)
        if results:
            return AIMessage(content=" ".join(_spoken(r) for r in results))
        if not messages or not isinstance(messages[-1], HumanMessage):
            return AIMessage(content=_PROMPT)
        return self.answer(_content_text(messages[-1].content), tools, context)

    def answer(self, said: str, tools: Sequence[ToolSpec], context: TurnContext) -> AIMessage:
        """The reply to one request, as text or a tool call."""
        text = _normalize(said)
        if not text:
            return AIMessage(content=_PROMPT)
        stripped = _strip_fillers(text)
        reply = _small_talk(text, context) or _small_talk(stripped, context)
        if reply:
            return AIMessage(content=reply)
        call = _tool_call(stripped, tools, context)
        if call is None:
            return AIMessage(content=NOT_UNDERSTOOD)
        return AIMessage(content="", tool_calls=[call])
