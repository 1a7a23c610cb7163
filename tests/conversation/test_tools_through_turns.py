"""Every tool through real workflow turns, and no way to reach another user's data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from convonet.call_client import ScriptedCaller
from convonet.db.models import Priority, Reminder, Todo, ToolExecution, User
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import running_system

# (what the caller says, the tool it must run, words the spoken reply must contain)
SCRIPT = [
    ("add a todo buy milk", "create_todo", "buy milk"),
    ("change the priority of buy milk to high", "update_todo", ""),
    ("what are my todos", "list_todos", "buy milk"),
    ("mark buy milk as done", "complete_todo", ""),
    ("add a todo pay rent", "create_todo", "pay rent"),
    ("delete the todo pay rent", "delete_todo", ""),
    ("remind me to call mom tomorrow at 5 pm", "create_reminder", "call mom"),
    ("reminders for tomorrow", "list_reminders", "call mom"),
    ("change reminder call mom to say call dad", "update_reminder", ""),
    ("delete the reminder call dad", "delete_reminder", ""),
    ("schedule a meeting with Bob tomorrow at 10", "create_event", "meeting with Bob"),
    ("my schedule tomorrow", "list_events", "meeting with Bob"),
    ("rename meeting with Bob to project sync meeting", "update_event", ""),
    ("cancel the project sync meeting", "delete_event", ""),
    ("create a team called marketing", "create_team", "marketing"),
    ("add Bob to the marketing team as admin", "add_team_member", "Bob"),
    ("who is in the marketing team", "list_team_members", "Bob"),
    ("change Bob's role in marketing to member", "change_member_role", ""),
    ("add a todo for the marketing team prepare slides assigned to Bob", "create_team_todo", ""),
    ("remove Bob from marketing", "remove_team_member", ""),
    ("list my teams", "list_my_teams", "marketing"),
    ("find user Bob", "search_users", "Bob"),
    ("which departments can I talk to", "list_departments", "sales"),
    ("transfer me to sales", "transfer_to_agent", "sales"),
]


async def test_every_tool_runs_through_a_workflow_turn(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        await caller.connect()
        await caller.login("1234")
        for text, tool, words in SCRIPT:
            reply = await caller.say(text)
            names = [c["name"] for c in reply["tool_calls"]]
            assert names == [tool], (text, reply)
            assert reply["tool_calls"][0]["ok"], (text, reply)
            assert words.lower() in reply["assistant"].lower(), (text, reply)
        assert reply["state"] == "transferring" and reply["transfer"]["department"] == "sales"
        await caller.close()
    async with session_scope(settings.effective_database_url) as session:
        executed = (await session.scalars(select(ToolExecution.tool))).all()
    assert sorted(executed) == sorted(tool for _, tool, _ in SCRIPT)


async def test_a_caller_cannot_touch_another_users_data_by_id(settings: Settings) -> None:
    await seed(settings)
    async with session_scope(settings.effective_database_url) as session:
        bob = await session.scalar(select(User).where(User.email == "bob@example.com"))
        assert bob is not None
        todo = Todo(title="bob secret plan", creator_id=bob.id, priority=Priority.LOW)
        reminder = Reminder(
            user_id=bob.id, text="bob private call", remind_at=datetime.now(UTC) + timedelta(days=1)
        )
        session.add_all([todo, reminder])
        await session.flush()
        todo_id, reminder_id = todo.id, reminder.id

    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        await caller.connect()
        await caller.login("1234")  # Alice
        for text in (
            f"complete todo {todo_id}",
            f"todo {todo_id} priority urgent",
            f"remove todo {todo_id}",
            f"cancel reminder {reminder_id}",
            f"change reminder {reminder_id} to say hacked",
        ):
            reply = await caller.say(text)
            assert len(reply["tool_calls"]) == 1, (text, reply)
            assert reply["tool_calls"][0]["ok"] is False, (text, reply)
            assert "bob" not in reply["assistant"].lower()
        listed = await caller.say("what are my todos")
        assert "secret" not in listed["assistant"].lower()
        await caller.close()

    async with session_scope(settings.effective_database_url) as session:
        todo_after = await session.get(Todo, todo_id)
        reminder_after = await session.get(Reminder, reminder_id)
    assert todo_after is not None and not todo_after.done
    assert todo_after.priority == Priority.LOW
    assert reminder_after is not None and reminder_after.text == "bob private call"
