"""The Temporal server restarts mid-call (same --db-filename): the edge and the worker
reconnect, and the call goes on in the same conversation."""

from __future__ import annotations

import asyncio
import time

from tests.chaos.harness import CASE_S, Stack, say
from tests.speech_samples import speak
from tests.system import logged_in_caller
from workflows.conversation.models import workflow_id_for

TURN_S = 60.0


async def test_temporal_restart_mid_call(stack: Stack) -> None:
    """Restart the Temporal server mid-call, a turn sent while it is down."""
    async with asyncio.timeout(CASE_S):
        worker = await stack.start_worker()
        say(f"started worker (pid {worker.pid}); Temporal at {stack.settings.temporal_address}")
        caller, conversation_id = await logged_in_caller(stack.url)
        first = await caller.say("add a todo to buy apples")
        say(f"turn 1 before the restart: {first['assistant']!r}")
        handle = (await stack.temporal()).get_workflow_handle(workflow_id_for(conversation_id))
        run_before = (await handle.describe()).run_id

        began = time.monotonic()
        await stack.infra.stop_temporal()
        say("stopped the Temporal dev server; the caller sends turn 2 while it is down")
        pending = asyncio.create_task(caller.request("text_turn", {"text": "add a todo buy bread"}))
        await asyncio.sleep(2)
        await stack.infra.start_temporal()
        say(
            f"started it again on the same port and {stack.infra.db_file.name} "
            f"(gone {time.monotonic() - began:.1f} s)"
        )
        ack = await asyncio.wait_for(pending, TURN_S)
        if ack["ok"]:
            second = ack["data"]
            say(
                f"turn 2 waited for the server and completed: {second['assistant']!r} "
                f"({second['latency_ms']} ms)"
            )
            assert second["tool_calls"][0]["name"] == "create_todo" and second["turn"] == 2
        else:
            say(f"turn 2 was refused: {ack['error']['message']!r}; the caller says it again")
            second = await caller.say("add a todo buy bread")
            say(f"turn 2 again: {second['assistant']!r}")
        spoken = await caller.speak(speak("what's on my list"))
        say(
            f"turn 3, spoken: heard {spoken['user']!r}, answered {spoken['assistant']!r}, "
            f"{spoken['audio_ms']} ms of reply audio"
        )
        assert "buy apples" in spoken["assistant"] and "buy bread" in spoken["assistant"]
        assert spoken["audio_ms"] > 500

        description = await handle.describe()
        transcript = await stack.transcript(conversation_id)
        turns = sorted({entry.turn for entry in transcript if entry.role == "user"})
        say(
            f"same conversation {conversation_id[:8]}, same run: "
            f"{description.run_id == run_before}; user turns in its transcript: {turns}; "
            f"still {description.status.name if description.status else '?'}"
        )
        assert description.run_id == run_before and turns == [1, 2, 3]
        rows = {title: (await stack.rows(title))[0] for title in ("buy apples", "buy bread")}
        say(f"todo rows: {rows}")
        assert rows == {"buy apples": 1, "buy bread": 1}
        await caller.close()
