"""The embedded intent model: phrasings to tool calls, dates, and tool results to speech."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import TOOL_SPECS, TOOLS_BY_NAME
from convonet.engines.llm.intent_dates import extract_when, iso_due, iso_instant
from convonet.engines.llm.intent_model import NOT_UNDERSTOOD, IntentModel

NOW = "2026-11-25T10:00:00-05:00"  # a Wednesday


def context(turn: int = 4) -> TurnContext:
    return TurnContext(
        conversation_id="conv-1",
        workflow_id="wf-1",
        turn=turn,
        user_id=7,
        user_name="Alice Smith",
        timezone="America/New_York",
        now_iso=NOW,
    )


async def call_for(text: str, tools: Any = TOOL_SPECS) -> AIMessage:
    return await IntentModel().respond([HumanMessage(text)], tools, context())


CASES: list[tuple[str, str, dict[str, Any]]] = [
    # create_todo
    ("add a todo buy milk", "create_todo", {"title": "buy milk", "priority": "medium"}),
    ("Add buy milk to my list.", "create_todo", {"title": "buy milk"}),
    (
        "create a task call the bank with high priority due friday",
        "create_todo",
        {"title": "call the bank", "priority": "high", "due": "2026-11-27"},
    ),
    ("new todo: pay rent", "create_todo", {"title": "pay rent"}),
    ("I need to renew my passport", "create_todo", {"title": "renew my passport"}),
    ("remind me to buy milk", "create_todo", {"title": "buy milk"}),
    (
        "add an urgent todo fix the sink by tomorrow at 3 pm",
        "create_todo",
        {"title": "fix the sink", "priority": "urgent", "due": "2026-11-26T15:00:00-05:00"},
    ),
    # list_todos
    ("what are my todos", "list_todos", {}),
    ("list my tasks", "list_todos", {}),
    ("what's on my list", "list_todos", {}),
    ("show my done todos", "list_todos", {"status": "done"}),
    ("what's due today", "list_todos", {"due": "today"}),
    ("overdue tasks", "list_todos", {"due": "overdue"}),
    ("my urgent todos", "list_todos", {"priority": "urgent"}),
    # update_todo
    (
        "change the priority of buy milk to high",
        "update_todo",
        {"title_match": "buy milk", "priority": "high"},
    ),
    (
        "rename buy milk to buy oat milk",
        "update_todo",
        {"title_match": "buy milk", "new_title": "buy oat milk"},
    ),
    (
        "move the due date of buy milk to friday",
        "update_todo",
        {"title_match": "buy milk", "due": "2026-11-27"},
    ),
    ("todo 3 priority urgent", "update_todo", {"todo_id": 3, "priority": "urgent"}),
    # complete_todo
    ("mark buy milk as done", "complete_todo", {"title_match": "buy milk"}),
    ("I finished buy milk", "complete_todo", {"title_match": "buy milk"}),
    ("complete todo 3", "complete_todo", {"todo_id": 3}),
    ("check off buy milk", "complete_todo", {"title_match": "buy milk"}),
    # delete_todo
    ("delete the todo buy milk", "delete_todo", {"title_match": "buy milk"}),
    ("remove todo 3", "delete_todo", {"todo_id": 3}),
    ("remove buy milk from my list", "delete_todo", {"title_match": "buy milk"}),
    # create_reminder
    (
        "remind me to call mom tomorrow at 5 pm",
        "create_reminder",
        {"text": "call mom", "remind_at": "2026-11-26T17:00:00-05:00"},
    ),
    (
        "set a reminder for 3 pm to take pills",
        "create_reminder",
        {"text": "take pills", "remind_at": "2026-11-25T15:00:00-05:00"},
    ),
    (
        "remind me in 2 hours to stretch",
        "create_reminder",
        {"text": "stretch", "remind_at": "2026-11-25T12:00:00-05:00"},
    ),
    (
        "remind me tomorrow at five thirty to water the plants",
        "create_reminder",
        {"text": "water the plants", "remind_at": "2026-11-26T17:30:00-05:00"},
    ),
    # list_reminders
    ("what are my reminders", "list_reminders", {}),
    ("reminders for tomorrow", "list_reminders", {"day": "2026-11-26"}),
    (
        "what reminders do i have next week",
        "list_reminders",
        {"day": "2026-11-30", "end_day": "2026-12-06"},
    ),
    # update_reminder
    (
        "move my reminder call mom to 6 pm",
        "update_reminder",
        {"text_match": "call mom", "remind_at": "2026-11-25T18:00:00-05:00"},
    ),
    (
        "change reminder 2 to tomorrow at 9",
        "update_reminder",
        {"reminder_id": 2, "remind_at": "2026-11-26T09:00:00-05:00"},
    ),
    (
        "change reminder 2 to say call dad",
        "update_reminder",
        {"reminder_id": 2, "text": "call dad"},
    ),
    # delete_reminder
    ("delete the reminder call mom", "delete_reminder", {"text_match": "call mom"}),
    ("cancel reminder 2", "delete_reminder", {"reminder_id": 2}),
    # create_event
    (
        "schedule a meeting with Bob tomorrow at 10",
        "create_event",
        {"title": "meeting with Bob", "starts_at": "2026-11-26T10:00:00-05:00"},
    ),
    (
        "add dentist appointment on friday at 2 pm for 30 minutes",
        "create_event",
        {
            "title": "dentist appointment",
            "starts_at": "2026-11-27T14:00:00-05:00",
            "duration_minutes": 30,
        },
    ),
    (
        "put lunch with Ann on my calendar at noon at Cafe Blue",
        "create_event",
        {
            "title": "lunch with Ann",
            "starts_at": "2026-11-25T12:00:00-05:00",
            "location": "Cafe Blue",
        },
    ),
    # list_events
    ("what's on my calendar today", "list_events", {"day": "2026-11-25"}),
    ("my schedule tomorrow", "list_events", {"day": "2026-11-26"}),
    (
        "what meetings do I have this week",
        "list_events",
        {"day": "2026-11-25", "end_day": "2026-11-29"},
    ),
    # update_event
    (
        "move the dentist appointment to 3 pm",
        "update_event",
        {"title_match": "dentist appointment", "starts_at": "2026-11-25T15:00:00-05:00"},
    ),
    (
        "rename meeting with Bob to project sync",
        "update_event",
        {"title_match": "meeting with Bob", "new_title": "project sync"},
    ),
    (
        "reschedule my meeting with bob to friday at 2",
        "update_event",
        {"title_match": "meeting with bob", "starts_at": "2026-11-27T14:00:00-05:00"},
    ),
    # delete_event
    ("cancel the dentist appointment", "delete_event", {"title_match": "dentist appointment"}),
    ("delete event abc123", "delete_event", {"event_id": "abc123"}),
    # teams
    ("what teams am I in", "list_my_teams", {}),
    ("list my teams", "list_my_teams", {}),
    ("who is in the sales team", "list_team_members", {"team": "sales"}),
    ("members of team alpha", "list_team_members", {"team": "alpha"}),
    ("create a team called marketing", "create_team", {"name": "marketing"}),
    ("create a design team", "create_team", {"name": "design"}),
    (
        "add Bob to the marketing team as admin",
        "add_team_member",
        {"team": "marketing", "user": "Bob", "role": "admin"},
    ),
    ("add carol to design", "add_team_member", {"team": "design", "user": "carol"}),
    ("remove Bob from marketing", "remove_team_member", {"team": "marketing", "user": "Bob"}),
    ("kick dave out of the design team", "remove_team_member", {"team": "design", "user": "dave"}),
    (
        "make Bob an admin of marketing",
        "change_member_role",
        {"team": "marketing", "user": "Bob", "role": "admin"},
    ),
    (
        "change Bob's role in marketing to viewer",
        "change_member_role",
        {"team": "marketing", "user": "Bob", "role": "viewer"},
    ),
    ("find user Bob", "search_users", {"query": "Bob"}),
    ("search for alice", "search_users", {"query": "alice"}),
    (
        "add a todo for the marketing team prepare slides assigned to Bob",
        "create_team_todo",
        {"team": "marketing", "title": "prepare slides", "assignee": "Bob"},
    ),
    (
        "assign write report to Bob in team marketing",
        "create_team_todo",
        {"team": "marketing", "title": "write report", "assignee": "Bob"},
    ),
    # departments and transfer
    ("which departments can I talk to", "list_departments", {}),
    ("what departments are there", "list_departments", {}),
    ("I want to talk to a person", "transfer_to_agent", {"department": "general"}),
    ("transfer me to sales", "transfer_to_agent", {"department": "sales"}),
    (
        "connect me with billing because my invoice is wrong",
        "transfer_to_agent",
        {"department": "billing", "reason": "my invoice is wrong"},
    ),
    # after a transfer nobody took
    (
        "take a message please call me back about my invoice",
        "take_message",
        {"message": "call me back about my invoice"},
    ),
    (
        "leave a message for sales: I want the yearly plan",
        "take_message",
        {"message": "I want the yearly plan", "department": "sales"},
    ),
]


@pytest.mark.parametrize(("text", "tool", "expected"), CASES)
async def test_phrasing_calls_tool(text: str, tool: str, expected: dict[str, Any]) -> None:
    reply = await call_for(text)
    assert reply.content == ""
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call["name"] == tool
    assert call["id"] == "call_4_0"
    TOOLS_BY_NAME[tool].args.model_validate(call["args"])
    assert {key: call["args"].get(key) for key in expected} == expected


def test_every_tool_has_two_phrasings() -> None:
    covered = [tool for _, tool, _ in CASES]
    assert {spec.name: covered.count(spec.name) >= 2 for spec in TOOL_SPECS} == {
        spec.name: True for spec in TOOL_SPECS
    }


async def test_speech_to_text_style_input_with_fillers() -> None:
    reply = await call_for("hey can you please add a todo to buy eggs thanks")
    assert reply.tool_calls[0]["args"] == {"title": "buy eggs", "priority": "medium"}


async def test_try_again_means_the_department_that_failed() -> None:
    after_failure = context().model_copy(update={"last_failed_department": "billing"})
    reply = await IntentModel().respond([HumanMessage("try again")], TOOL_SPECS, after_failure)
    assert reply.tool_calls[0]["name"] == "transfer_to_agent"
    assert reply.tool_calls[0]["args"]["department"] == "billing"
    # With nothing to retry, "try again" calls no tool.
    assert (await call_for("try again")).tool_calls == []


async def test_transfer_reason_defaults_to_the_request() -> None:
    reply = await call_for("transfer me to sales")
    assert reply.tool_calls[0]["args"]["reason"] == "transfer me to sales"


@pytest.mark.parametrize(
    ("text", "day", "clock"),
    [
        ("today", "2026-11-25", None),
        ("tomorrow", "2026-11-26", None),
        ("the day after tomorrow", "2026-11-27", None),
        ("friday", "2026-11-27", None),
        ("on tuesday", "2026-12-01", None),
        ("next monday", "2026-11-30", None),
        ("wednesday", "2026-12-02", None),  # today excluded
        ("december 5", "2026-12-05", None),
        ("december 5th", "2026-12-05", None),
        ("5th of december", "2026-12-05", None),
        ("december fifth", "2026-12-05", None),
        ("2026-12-05", "2026-12-05", None),
        ("january 3", "2027-01-03", None),  # already past this year
        ("at 3", None, "15:00"),  # bare 1-6 means pm
        ("at 9", None, "09:00"),
        ("at 3 pm", None, "15:00"),
        ("at 3 p.m.", None, "15:00"),
        ("at 15:30", None, "15:30"),
        ("at noon", None, "12:00"),
        ("at 3:30 in the afternoon", None, "15:30"),
        ("at three pm", None, "15:00"),
        ("at five thirty", None, "17:30"),
        ("at 10 at night", None, "22:00"),
        ("half past three", None, "15:30"),
        ("tonight at 9", "2026-11-25", "21:00"),
        ("tomorrow morning", "2026-11-26", "09:00"),
    ],
)
def test_date_and_time_phrases(text: str, day: str | None, clock: str | None) -> None:
    rest, when = extract_when(text, datetime.fromisoformat(NOW))
    assert rest == ""
    assert (when.day.isoformat() if when.day else None) == day
    assert (when.clock.strftime("%H:%M") if when.clock else None) == clock


def test_ranges_relative_times_and_iso_output() -> None:
    now = datetime.fromisoformat(NOW)
    week = extract_when("this week", now)[1]
    assert (week.day, week.end_day) == (now.date(), now.date().replace(day=29))
    assert iso_instant(extract_when("in 2 hours", now)[1], now) == "2026-11-25T12:00:00-05:00"
    assert iso_instant(extract_when("in 30 minutes", now)[1], now) == "2026-11-25T10:30:00-05:00"
    # A time already past today means tomorrow; a day without a time defaults to 9 AM.
    assert iso_instant(extract_when("at 8 am", now)[1], now) == "2026-11-26T08:00:00-05:00"
    assert iso_instant(extract_when("friday", now)[1], now) == "2026-11-27T09:00:00-05:00"
    assert iso_due(extract_when("friday", now)[1], now) == "2026-11-27"
    assert extract_when("todo 3 buy 5 apples", now) == (
        "todo 3 buy 5 apples",
        extract_when("", now)[1],
    )


async def test_tool_results_become_speech() -> None:
    results = [
        ToolMessage(ToolResult(ok=True, say="Added buy milk").model_dump_json(), tool_call_id="a"),
        ToolMessage(
            json.dumps({"ok": False, "say": "I couldn't find that todo.", "data": {"x": 1}}),
            tool_call_id="b",
        ),
    ]
    history = [HumanMessage("add a todo buy milk"), AIMessage(content=""), *results]
    reply = await IntentModel().respond(history, TOOL_SPECS, context())
    assert reply.tool_calls == []
    assert reply.content == "Added buy milk. I couldn't find that todo."


async def test_unparseable_tool_results_never_leak() -> None:
    ok = ToolMessage("not json {", tool_call_id="a")
    failed = ToolMessage("Error: boom", tool_call_id="b", status="error")
    reply = await IntentModel().respond([HumanMessage("x"), ok, failed], TOOL_SPECS, context())
    assert reply.content == "Done. Sorry, something went wrong with that."


@pytest.mark.parametrize("text", ["blah blah foo", "what's the weather like", "delete it"])
async def test_not_understood(text: str) -> None:
    reply = await call_for(text)
    assert reply.tool_calls == []
    assert reply.content == NOT_UNDERSTOOD


async def test_vague_text_never_deletes() -> None:
    for text in ("delete everything", "remove all", "cancel that", "delete buy milk"):
        reply = await call_for(text)
        assert not [c for c in reply.tool_calls if c["name"].startswith("delete")], text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", "Hello Alice! How can I help you?"),
        ("hi there", "Hello Alice! How can I help you?"),
        ("thank you", "You're welcome! Anything else?"),
        ("goodbye", "Goodbye Alice!"),
    ],
)
async def test_small_talk(text: str, expected: str) -> None:
    reply = await call_for(text)
    assert reply.tool_calls == []
    assert reply.content == expected


async def test_help_summarizes_capabilities() -> None:
    reply = await call_for("what can you do")
    assert reply.tool_calls == []
    assert "todos" in str(reply.content) and "calendar" in str(reply.content)


async def test_tools_not_offered_are_never_called() -> None:
    offered = [spec for spec in TOOL_SPECS if spec.name not in ("create_reminder", "delete_todo")]
    reply = await call_for("remind me to call mom tomorrow at 5 pm", offered)
    assert [c["name"] for c in reply.tool_calls] == ["create_todo"]
    reply = await call_for("delete the todo buy milk", offered)
    assert reply.tool_calls == []
    for text, _, _ in CASES:
        reply = await call_for(text, [TOOLS_BY_NAME["list_my_teams"]])
        assert all(c["name"] == "list_my_teams" for c in reply.tool_calls), text


async def test_is_deterministic_and_uses_turn_in_call_ids() -> None:
    model = IntentModel()
    first = await model.respond([HumanMessage("list my teams")], TOOL_SPECS, context(turn=9))
    second = await model.respond([HumanMessage("list my teams")], TOOL_SPECS, context(turn=9))
    assert first.tool_calls == second.tool_calls
    assert first.tool_calls[0]["id"] == "call_9_0"
