"""Transfers in built-in mode, through the public sockets: the agent's dashboard rings
with the caller's details, audio flows both ways through the bridge, and every step lands
in the call record. Failures bring the caller back to the assistant."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from convonet.agent_client import ScriptedAgent
from convonet.call_client import ScriptedCaller
from convonet.db.models import Agent, AgentState, Todo
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import SAMPLE_RATE
from tests.system import running_system
from tests.transfer.helpers import call_record, dominant_frequency, tone


async def _agent_state(settings: Settings, login: str = "dana") -> AgentState:
    async with session_scope(settings.effective_database_url) as db:
        agent = await db.scalar(select(Agent).where(Agent.login == login))
        assert agent is not None
        return agent.state


async def test_caller_talks_with_the_agent_and_the_call_is_recorded(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        agent = ScriptedAgent(system.url)
        await agent.login()
        await agent.wait_for("agent_state", state="ready")
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        conversation_id = status["conversation_id"]
        await caller.login("1234")
        await caller.say("add a todo to renew the contract")
        reply = await caller.say("transfer me to sales because of pricing")
        assert reply["state"] == "transferring"

        ring = (await agent.wait_for("ring"))["call"]
        await caller.wait_for("transfer", state="ringing")
        assert ring["caller"]["name"] == "Alice Martin"
        assert ring["caller"]["teams"] == ["Demo Team"]
        assert [t["title"] for t in ring["caller"]["open_todos"]] == ["renew the contract"]
        assert ring["department"] == "sales"
        assert "Alice Martin asked the assistant to be put through to sales" in ring["summary"]
        assert any("renew the contract" in line["text"] for line in ring["transcript"])
        assert "1234" not in str(ring)

        # One transfer at a time: asking again is answered with where it is.
        again = await caller.say("transfer me to support")
        assert again["state"] == "transferring" and "hold on" in again["assistant"]
        assert again["tool_calls"] == []

        ack = await agent.request("answer", {"transfer_id": ring["transfer_id"]})
        assert ack["ok"], ack
        await caller.wait_for("transfer", state="bridged")
        assert (await caller.wait_for("transfer", state="bridged"))["agent_name"] == "Dana Agent"
        assert await _agent_state(settings) == AgentState.ON_CALL

        # Audio both ways: each side hears the other's tone.
        await caller.open_mic()
        await asyncio.gather(caller.stream(tone(440, 1.0)), agent.stream(tone(1000, 1.0)))
        await asyncio.sleep(0.3)
        # Most of each second arrives (a loaded machine may shed a few late frames).
        assert len(agent.heard) >= 0.5 * SAMPLE_RATE * 2
        assert len(caller.bridge_audio) >= 0.5 * SAMPLE_RATE * 2
        assert abs(dominant_frequency(bytes(agent.heard)) - 440) < 10
        assert abs(dominant_frequency(bytes(caller.bridge_audio)) - 1000) < 10

        ack = await agent.request("hang_up", {"transfer_id": ring["transfer_id"]})
        assert ack["ok"], ack
        await caller.wait_for("transfer", state="ended")
        said = await caller.wait_for("assistant")
        assert "Your call with Dana Agent has ended" in said["text"]
        assert await _agent_state(settings) == AgentState.WRAP_UP

        # The assistant is back: a normal turn works again.
        back = await caller.say("what are my todos")
        assert back["state"] == "active" and "renew the contract" in back["assistant"]

        response = await agent.dispose(ring["call_record_id"], "resolved", "Sent the price list.")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "ready"
        record = await call_record(settings, conversation_id)
        assert record.state == "ended" and record.disposition == "resolved"
        assert record.notes == "Sent the price list."
        stamps = [
            record.requested_at,
            record.dialing_at,
            record.ringing_at,
            record.answered_at,
            record.bridged_at,
            record.ended_at,
            record.dispositioned_at,
        ]
        assert all(stamps), stamps
        assert record.agent_id is not None and record.leg_id
        await caller.close()
        await agent.close()


async def test_no_answer_brings_the_caller_back_and_a_message_becomes_a_team_todo(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"transfer_ring_timeout_s": 5})
    await seed(settings)
    async with running_system(settings) as system:
        agent = ScriptedAgent(system.url)
        await agent.login()
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        await caller.login("2345")
        await caller.say("transfer me to billing")
        await agent.wait_for("ring")
        # Nobody answers: after the ring timeout the dashboard stops ringing.
        failed = await caller.wait_for("transfer", timeout=20, state="failed")
        assert failed["reason"] == "no-answer"
        said = await caller.wait_for("assistant")
        assert "nobody in billing answered" in said["text"]
        assert "take a message" in said["text"]
        await agent.wait_for("call_state", state="failed")
        record = await call_record(settings, status["conversation_id"])
        assert record.state == "failed" and record.outcome == "no-answer"
        assert record.ringing_at is None or record.dialing_at is not None
        assert await _agent_state(settings) == AgentState.READY

        reply = await caller.say("take a message please call me back about my invoice")
        assert reply["tool_calls"][0]["name"] == "take_message", reply
        async with session_scope(settings.effective_database_url) as db:
            todo = await db.scalar(select(Todo).where(Todo.title.like("%call me back%")))
            assert todo is not None and todo.team_id is not None
        await caller.close()
        await agent.close()


async def test_declined_and_no_ready_agent(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        agent = ScriptedAgent(system.url)
        await agent.login()
        caller = ScriptedCaller(system.url)
        await caller.connect()
        await caller.login("1234")
        await caller.say("transfer me to support")
        ring = (await agent.wait_for("ring"))["call"]
        assert (await agent.request("decline", {"transfer_id": ring["transfer_id"]}))["ok"]
        failed = await caller.wait_for("transfer", state="failed")
        assert failed["reason"] == "rejected"
        said = await caller.wait_for("assistant")
        assert "Dana Agent couldn't take your call" in said["text"]

        # Not ready: the agent is skipped, and nobody else is there.
        ack = await agent.request("set_state", {"state": "not-ready"})
        assert ack["ok"], ack
        retry = await caller.say("try again")
        assert retry["tool_calls"][0]["args"]["department"] == "support", retry
        failed_again = await caller.wait_for(
            "transfer", where=lambda e: e["reason"] == "no-agent", state="failed"
        )
        assert failed_again["department"] == "support"
        # Someone else's call cannot be answered.
        refused = await agent.request("answer", {"transfer_id": ring["transfer_id"]})
        assert not refused["ok"]
        await caller.close()
        await agent.close()


async def test_agent_dashboard_closing_ends_the_call_for_the_caller(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        agent = ScriptedAgent(system.url)
        await agent.login()
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        await caller.login("3456")
        await caller.say("transfer me to an agent")
        ring = (await agent.wait_for("ring"))["call"]
        assert (await agent.request("answer", {"transfer_id": ring["transfer_id"]}))["ok"]
        await caller.wait_for("transfer", state="bridged")
        await agent.close()
        ended = await caller.wait_for("transfer", state="ended")
        assert ended["reason"] == "agent-hung-up"
        await caller.wait_for("assistant")
        assert (await caller.say("what are my todos"))["state"] == "active"
        record = await call_record(settings, status["conversation_id"])
        assert record.state == "ended" and record.ended_at is not None
        await caller.close()
