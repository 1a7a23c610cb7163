"""PIN login, text turns, validation, hang-up and idle timeout through the public socket."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from convonet.call_client import ScriptedCaller
from convonet.db.models import AuthAudit, Todo
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import payload_text, running_system
from workflows.conversation.models import ConversationState, workflow_id_for
from workflows.conversation.workflow import ConversationWorkflow


async def _audit_outcomes(settings: Settings) -> list[str]:
    async with session_scope(settings.effective_database_url) as session:
        rows = await session.scalars(select(AuthAudit).order_by(AuthAudit.id))
        return [row.outcome for row in rows]


async def test_wrong_then_right_pin_greets_by_name_and_audits(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        assert status["state"] == "awaiting-auth" and status["authenticated"] is False

        refused = await caller.request("text_turn", {"text": "list my todos"})
        assert refused["ok"] is False and refused["error"]["code"] == "not_authenticated"

        wrong = await caller.request("authenticate", {"pin": "9999"})
        assert wrong["ok"] is True and wrong["data"]["ok"] is False
        assert "not right" in wrong["data"]["reason"]
        assert wrong["data"]["attempts_left"] == 4

        malformed = await caller.request("authenticate", {"pin": "12ab"})
        assert malformed["ok"] is False and malformed["error"]["code"] == "bad_request"

        good = await caller.login("1234")
        assert good["greeting"].startswith("Hi Alice")
        assert good["session_token"]
        await caller.close()

    assert await _audit_outcomes(settings) == ["wrong", "ok"]
    # The PIN never reaches the history: the update carried only a one-time token.
    handle = system.client.get_workflow_handle_for(
        ConversationWorkflow.run, workflow_id_for(status["conversation_id"])
    )
    payloads = payload_text(await handle.fetch_history())
    assert "Hi Alice" in payloads  # the payloads really were decoded
    assert "1234" not in payloads and "9999" not in payloads
    assert good["session_token"] not in payloads


async def test_five_failures_end_the_conversation(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        for attempt in range(5):
            ack = await caller.request("authenticate", {"pin": f"000{attempt}"})
            assert ack["data"]["ok"] is False
        assert ack["data"]["state"] == "ended"
        assert "ending" in ack["data"]["reason"]
        after = await caller.request("authenticate", {"pin": "1234"})
        assert after["ok"] is False and after["error"]["code"] == "rejected"
        await caller.close()
        handle = system.client.get_workflow_handle_for(
            ConversationWorkflow.run, workflow_id_for(status["conversation_id"])
        )
        final = await handle.result()
        assert final.state == ConversationState.ENDED and final.outcome == "auth-failed"


async def test_text_turn_creates_todo_and_validator_rejects_bad_turns(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        await caller.login("1234")

        reply = await caller.say("add a todo buy oat milk with high priority")
        assert [c["name"] for c in reply["tool_calls"]] == ["create_todo"]
        assert reply["tool_calls"][0]["ok"] is True
        assert "oat milk" in reply["assistant"].lower()
        assert reply["latency_ms"] >= 0

        listed = await caller.say("what are my todos")
        assert "oat milk" in listed["assistant"].lower()

        empty = await caller.request("text_turn", {"text": "   "})
        assert empty["ok"] is False and "empty" in empty["error"]["message"]
        huge = await caller.request("text_turn", {"text": "x" * 2001})
        assert huge["ok"] is False and "too long" in huge["error"]["message"]

        handle = system.client.get_workflow_handle_for(
            ConversationWorkflow.run, workflow_id_for(status["conversation_id"])
        )
        transcript = await handle.query(ConversationWorkflow.transcript)
        assert [e.role for e in transcript] == [
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
        ]

        hung = await caller.request("hang_up", {})
        assert hung["ok"] is True and hung["data"]["state"] == "ended"
        after = await caller.request("text_turn", {"text": "hello"})
        assert after["ok"] is False and after["error"]["code"] == "not_authenticated"
        await caller.close()
        final = await handle.result()
        assert final.outcome == "hung-up" and final.turn == 2

    async with session_scope(settings.effective_database_url) as session:
        todos = (await session.scalars(select(Todo))).all()
    assert [(t.title, t.priority.value) for t in todos] == [("buy oat milk", "high")]


async def test_reconnect_with_session_token_resumes_the_same_conversation(
    settings: Settings,
) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        first = ScriptedCaller(system.url)
        status = await first.connect()
        login = await first.login("2345")
        await first.close()

        second = ScriptedCaller(system.url)
        resumed = await second.connect(
            {"conversation_id": status["conversation_id"], "session_token": login["session_token"]}
        )
        assert resumed["conversation_id"] == status["conversation_id"]
        assert resumed["authenticated"] is True
        reply = await second.say("hello")
        assert reply["turn"] == 1
        await second.close()

        stranger = ScriptedCaller(system.url)
        other = await stranger.connect(
            {"conversation_id": status["conversation_id"], "session_token": "forged-token"}
        )
        assert other["conversation_id"] != status["conversation_id"]
        assert other["authenticated"] is False
        await stranger.close()


async def test_idle_conversation_ends_by_itself(settings: Settings) -> None:
    settings = settings.model_copy(update={"idle_timeout_s": 2})
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        await caller.login("1234")
        handle = system.client.get_workflow_handle_for(
            ConversationWorkflow.run, workflow_id_for(status["conversation_id"])
        )
        final = await asyncio.wait_for(handle.result(), timeout=20)
        assert final.outcome == "idle-timeout"
        await caller.close()


async def test_long_conversation_continues_as_new_and_keeps_its_state(settings: Settings) -> None:
    settings = settings.model_copy(update={"history_event_limit": 30})
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        await caller.login("1234")
        for index in range(4):
            reply = await caller.say(f"add a todo task number {index}")
            assert reply["turn"] == index + 1
        listed = await caller.say("what are my todos")
        assert "task number 3" in listed["assistant"]
        workflow_id = workflow_id_for(status["conversation_id"])
        handle = system.client.get_workflow_handle_for(ConversationWorkflow.run, workflow_id)
        transcript = await handle.query(ConversationWorkflow.transcript)
        assert [e.text for e in transcript if e.role == "user"][0] == "add a todo task number 0"
        runs = [w async for w in system.client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        assert len(runs) >= 2
        await caller.close()
