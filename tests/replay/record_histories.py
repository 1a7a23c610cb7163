"""Records the histories that `tests/replay/test_replay.py` replays.

Run after an intentional workflow change (and review the diff):
    .venv/bin/python -m tests.replay.record_histories
It needs the same PostgreSQL and Redis as the test suite and starts its own Temporal.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from convonet import search_attributes
from convonet.agent_client import ScriptedAgent
from convonet.call_client import ScriptedCaller
from convonet.db.migrate import upgrade
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import silence
from tests.conftest import PG_ADMIN_DSN, REDIS_URL, TEST_PEPPER, _async_url
from tests.speech_samples import speak
from tests.system import RunningSystem, running_system
from workflows.conversation.models import workflow_id_for
from workflows.conversation.workflow import ConversationWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"


async def _save_runs(client: Client, conversation_id: str, scenario: str) -> None:
    workflow_id = workflow_id_for(conversation_id)
    runs = [e async for e in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    runs.sort(key=lambda e: e.start_time)
    for index, execution in enumerate(runs, start=1):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        history = await handle.fetch_history()
        suffix = f"-run{index}" if len(runs) > 1 else ""
        path = HISTORIES / f"{scenario}{suffix}.json"
        path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
        print(f"wrote {path.relative_to(Path.cwd())} ({len(history.events)} events)")


async def _record(
    system: RunningSystem,
    scenario: str,
    pins: list[str],
    lines: list[str],
    hang_up: bool = True,
) -> list[dict[str, Any]]:
    """One call: every PIN but the last is wrong; then the lines; then hang up or terminate."""
    caller = ScriptedCaller(system.url)
    status = await caller.connect()
    for wrong_pin in pins[:-1]:
        wrong = await caller.request("authenticate", {"pin": wrong_pin})
        assert wrong["data"]["ok"] is False
    await caller.login(pins[-1])
    replies = [await caller.say(line) for line in lines]
    handle = system.client.get_workflow_handle_for(
        ConversationWorkflow.run, workflow_id_for(status["conversation_id"])
    )
    if hang_up:
        await caller.request("hang_up", {})
        await caller.close()
        final = await handle.result()
        assert final.turn == len(lines)
    else:
        await caller.close()
        await handle.terminate("recording finished")
    await _save_runs(system.client, status["conversation_id"], scenario)
    return replies


async def _record_voice(system: RunningSystem) -> None:
    """Spoken turns, a barge-in and a typed turn whose reply is spoken."""
    caller = ScriptedCaller(system.url)
    status = await caller.connect()
    await caller.login("3456")
    first = await caller.speak(speak("create a todo to buy milk"), speed=1.8)
    assert first["tool_calls"], first
    await caller.stream(speak("what's on my list") + silence(600), speed=1.8)
    start = await caller.wait_for("speech", event="start")
    await caller.wait_for("timings", turn_key=start["turn_key"])
    await caller.request("barge_in", {"turn_key": start["turn_key"], "played_ms": 500})
    await caller.wait_for("audio_done", turn_key=start["turn_key"])
    typed = await caller.request("text_turn", {"text": "thank you", "speak": True})
    await caller.wait_for("audio_done", turn_key=typed["data"]["turn_key"])
    await caller.request("hang_up", {})
    await caller.close()
    handle = system.client.get_workflow_handle_for(
        ConversationWorkflow.run, workflow_id_for(status["conversation_id"])
    )
    await handle.result()
    await _save_runs(system.client, status["conversation_id"], "voice_barge_in")


async def _record_transfer(system: RunningSystem) -> None:
    """A transfer the agent answers, talks through and hangs up; then the caller leaves.
    Both the conversation and its transfer child are saved."""
    agent = ScriptedAgent(system.url)
    await agent.login()
    caller = ScriptedCaller(system.url)
    status = await caller.connect()
    await caller.login("1234")
    await caller.say("transfer me to support about my invoice")
    ring = (await agent.wait_for("ring"))["call"]
    await agent.request("answer", {"transfer_id": ring["transfer_id"]})
    await caller.wait_for("transfer", state="bridged")
    await agent.request("hang_up", {"transfer_id": ring["transfer_id"]})
    await caller.wait_for("assistant")
    await caller.say("thank you")
    await caller.request("hang_up", {})
    await caller.close()
    await agent.close()
    handle = system.client.get_workflow_handle_for(
        ConversationWorkflow.run, workflow_id_for(status["conversation_id"])
    )
    await handle.result()
    await _save_runs(system.client, status["conversation_id"], "transfer_answered")
    child = await system.client.get_workflow_handle(ring["transfer_id"]).fetch_history()
    path = HISTORIES / "transfer_answered_child.json"
    path.write_text(json.dumps(json.loads(child.to_json()), indent=1) + "\n")
    print(f"wrote {path.relative_to(Path.cwd())} ({len(child.events)} events)")


async def _scenarios(settings: Settings) -> None:
    async with running_system(settings) as system:
        await _record_transfer(system)
        await _record_voice(system)
        await _record(system, "failed_then_good_login", ["9999", "1234"], [])
        await _record(
            system,
            "multi_turn_tools",
            ["1234"],
            [
                "add a todo buy milk with high priority",
                "remind me to call mom tomorrow at 5 pm",
                "what are my todos",
                "mark buy milk as done",
            ],
        )
        replies = await _record(
            system,
            "transfer_request",
            ["2345"],
            ["transfer me to sales because I want to upgrade"],
            hang_up=False,
        )
        assert replies[-1]["state"] == "transferring", replies

    short = settings.model_copy(update={"history_event_limit": 30})
    async with running_system(short) as system:
        lines = [f"add a todo task number {index}" for index in range(4)]
        await _record(system, "continue_as_new", ["1234"], lines)


async def main() -> int:
    name = f"convonet_rec_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        data_converter=pydantic_data_converter,
    )
    try:
        url = _async_url(PG_ADMIN_DSN, name)
        await asyncio.to_thread(upgrade, url)
        settings = Settings(
            convonet_env="test",
            database_url=url,
            redis_url=REDIS_URL,
            pin_pepper=TEST_PEPPER,
            temporal_address=env.client.service_client.config.target_host,
            temporal_task_queue="convonet-record",
        )
        await seed(settings)
        HISTORIES.mkdir(parents=True, exist_ok=True)
        for old in HISTORIES.glob("*.json"):
            old.unlink()
        await _scenarios(settings)
    finally:
        await env.shutdown()
        from convonet.db.session import dispose_engines

        await dispose_engines()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
