"""Redis restarts mid-call: the edge and the worker reconnect on their own, the turn in
flight completes (or the caller is told to say it again), and the next turns work."""

from __future__ import annotations

import asyncio

from convonet.call_client import ScriptedCaller
from convonet.speech.audio import SAMPLE_BYTES, SAMPLE_RATE, silence
from tests.chaos.harness import CASE_S, Stack, say
from tests.speech_samples import speak
from tests.system import logged_in_caller

TURN_S = 60.0
# How long Redis stays down: about what a service manager's restart takes.
DOWN_S = 1.0


async def test_redis_restart_mid_utterance(stack: Stack) -> None:
    """Restart Redis while the caller is speaking; then talk on."""
    async with asyncio.timeout(CASE_S):
        worker = await stack.start_worker()
        say(f"started worker (pid {worker.pid}); Redis at {stack.settings.effective_redis_url}")
        caller, conversation_id = await logged_in_caller(stack.url)
        first = await caller.say("add a todo to buy apples")
        say(f"turn 1 before the restart: {first['assistant']!r}")

        await caller.open_mic()
        utterance = speak("create a todo to buy milk") + silence(1500)
        streaming = asyncio.create_task(caller.stream(utterance))
        key = (await caller.wait_for("speech", timeout=10, event="start"))["turn_key"]
        await caller.wait_for("transcript", timeout=30, turn_key=key, final=False)
        gone_s = await stack.infra.restart_redis(down_s=DOWN_S)
        say(f"restarted Redis mid utterance (gone {gone_s:.1f} s) while the caller kept talking")
        await asyncio.wait_for(streaming, 30)
        outcome, completed = await _outcome(caller, key)
        say(f"turn in flight: {outcome}")

        second = await caller.say("what are my todos")
        say(f"next text turn: {second['assistant']!r}")
        assert "buy apples" in second["assistant"]
        spoken = await caller.speak(speak("what's on my list"))
        say(
            f"next voice turn: heard {spoken['user']!r}, answered {spoken['assistant']!r}, "
            f"{spoken['audio_ms']} ms of reply audio"
        )
        assert spoken["user"] == "what's on my list" and "buy apples" in spoken["assistant"]
        assert spoken["audio_ms"] > 500
        todos = {title: (await stack.rows(title))[0] for title in ("buy apples", "buy milk")}
        say(f"todo rows: {todos}")
        assert todos == {"buy apples": 1, "buy milk": 1 if completed else 0}
        transcript = await stack.transcript(conversation_id)
        say(f"same conversation {conversation_id[:8]}: {len(transcript)} transcript entries")
        await caller.close()


async def _outcome(caller: ScriptedCaller, key: str) -> tuple[str, bool]:
    """What became of the turn that was in flight: answered (and spoken), or the caller was
    told something went wrong. True when it was answered."""
    answered = asyncio.ensure_future(caller.wait_for("reply", timeout=TURN_S, turn_key=key))
    told = asyncio.ensure_future(caller.wait_for("error", timeout=TURN_S))
    done, pending = await asyncio.wait(
        {answered, told}, timeout=TURN_S, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    assert done, "the turn in flight neither completed nor told the caller anything"
    if answered in done:
        reply = answered.result()
        await caller.wait_for("audio_done", timeout=30, turn_key=key)
        audio_ms = len(caller.audio[key]) // SAMPLE_BYTES * 1000 // SAMPLE_RATE
        assert reply["user"] == "create a todo to buy milk", "heard in full"
        assert audio_ms > 500, "the reply was spoken"
        said = f"heard {reply['user']!r}, answered {reply['assistant']!r}, {audio_ms} ms spoken"
        return f"completed: {said}", True
    error = told.result()
    return f"the caller was told: {error['message']!r} ({error['code']})", False
