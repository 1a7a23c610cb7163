"""kill -9 of the worker in each phase of a turn: a new worker process finishes the turn,
exactly once, and no tool runs twice.

The phases are held open by the FAULT_* hooks (activities/faults.py) of the doomed worker
only; the worker that takes over runs without them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from convonet.dev_supervisor import ManagedProcess
from convonet.settings import FAULT_SETTINGS, ConfigError, load_settings
from convonet.speech import streams
from convonet.speech.audio import FRAME_BYTES, FRAME_MS, SAMPLE_BYTES, SAMPLE_RATE, silence
from tests.chaos.harness import CASE_S, Stack, hold_line, identity, kill9, say
from tests.speech_samples import speak
from tests.system import logged_in_caller

HOLD_S = 40.0  # longer than any case waits: the kill always comes first
TURN_S = 90.0  # a killed worker's turn: ~10 s of workflow task timeout, then the work again


async def _check_once(
    stack: Stack, conversation_id: str, user_text: str, title: str, replies: list[dict[str, Any]]
) -> None:
    """The turn is in the conversation once, answered once, and its tool ran once."""
    transcript = await stack.transcript(conversation_id)
    asked = [e for e in transcript if e.role == "user" and e.text == user_text]
    turns = {e.turn for e in asked}
    answers = [e for e in transcript if e.role == "assistant" and e.turn in turns]
    todos, runs = await stack.rows(title)
    say(
        f"turn in the conversation: {len(asked)}, answered {len(answers)}; replies to the "
        f"caller: {len(replies)}; todos {title!r} rows: {todos}; tool_executions rows: {runs}"
    )
    assert len(asked) == 1 and len(answers) == 1 and len(replies) == 1
    assert (todos, runs) == (1, 1)


async def _check_took_over(
    stack: Stack, conversation_id: str, doomed: ManagedProcess, heir: ManagedProcess
) -> None:
    """The killed worker's work was taken over by the new process (its Temporal identity)."""
    who = await stack.task_identities(conversation_id)
    say(
        f"history: {who.count(identity(doomed))} task(s) done by the killed worker, "
        f"{who.count(identity(heir))} by the new one (pid {heir.pid})"
    )
    assert identity(heir) in who


async def test_killed_while_transcribing(stack: Stack) -> None:
    """kill -9 the worker mid utterance, while it transcribes."""
    async with asyncio.timeout(CASE_S):
        doomed = await stack.start_worker()
        say(f"started worker (pid {doomed.pid})")
        caller, conversation_id = await logged_in_caller(stack.url)
        utterance = speak("create a todo to buy milk") + silence(1500)
        half = len(utterance) // 2 // SAMPLE_BYTES * SAMPLE_BYTES
        await caller.open_mic()
        await caller.stream(utterance[:half])
        key = (await caller.wait_for("speech", timeout=10, event="start"))["turn_key"]
        interim = await caller.wait_for("transcript", timeout=30, turn_key=key, final=False)
        pid = await kill9(doomed)
        killed = time.monotonic()
        say(f"killed worker (pid {pid}) mid utterance (interim transcript {interim['text']!r})")
        await caller.stream(utterance[half:])
        heir = await stack.start_worker()
        say(f"started a new worker (pid {heir.pid}); the caller finished speaking")
        reply = await caller.wait_for("reply", timeout=TURN_S, turn_key=key)
        await caller.wait_for("audio_done", timeout=30, turn_key=key)
        say(
            f"turn completed {time.monotonic() - killed:.1f} s after the kill: "
            f"heard {reply['user']!r}, answered {reply['assistant']!r}"
        )
        shed = [e for e in caller.events["error"] if e.get("code") == "rate_limited"]
        assert reply["user"] == "create a todo to buy milk", f"frames shed: {len(shed)}"
        assert [c["name"] for c in reply["tool_calls"]] == ["create_todo"]
        assert len(caller.audio[key]) > SAMPLE_RATE * SAMPLE_BYTES // 2, "the reply was spoken"
        replies = [e for e in caller.events["reply"] if e.get("turn_key") == key]
        finals = [e for e in caller.events["transcript"] if e["turn_key"] == key and e["final"]]
        say(f"final transcripts the caller was sent: {len(finals)}")
        assert len(finals) == 1
        await _check_once(stack, conversation_id, reply["user"], "buy milk", replies)
        await _check_took_over(stack, conversation_id, doomed, heir)
        await caller.close()


async def test_killed_in_llm_step(stack: Stack) -> None:
    """kill -9 the worker while the turn is in its LLM step."""
    async with asyncio.timeout(CASE_S):
        doomed = await stack.start_worker(fault_llm_delay_s=HOLD_S)
        say(f"started worker (pid {doomed.pid}) holding each LLM step open")
        caller, conversation_id = await logged_in_caller(stack.url)
        text = "add a todo to water the plants"
        turn = asyncio.create_task(caller.request("text_turn", {"text": text, "speak": True}))
        await stack.wait_log(doomed, hold_line("the LLM step"), timeout=30)
        todos, runs = await stack.rows("water the plants")
        pid = await kill9(doomed)
        killed = time.monotonic()
        say(f"killed worker (pid {pid}) while the turn was in its LLM step (todo rows: {todos})")
        assert (todos, runs) == (0, 0)
        heir = await stack.start_worker()
        say(f"started a new worker (pid {heir.pid})")
        ack = await asyncio.wait_for(turn, TURN_S)
        assert ack["ok"], ack
        reply = ack["data"]
        await caller.wait_for("audio_done", timeout=30, turn_key=reply["turn_key"])
        say(
            f"turn completed {time.monotonic() - killed:.1f} s after the kill: "
            f"answered {reply['assistant']!r}, reply spoken"
        )
        assert [c["name"] for c in reply["tool_calls"]] == ["create_todo"]
        await _check_once(stack, conversation_id, text, "water the plants", [reply])
        await _check_took_over(stack, conversation_id, doomed, heir)
        await caller.close()


async def test_killed_in_tool_call_after_commit(stack: Stack) -> None:
    """kill -9 the worker in a tool call, after its commit, before it completes."""
    async with asyncio.timeout(CASE_S):
        doomed = await stack.start_worker(fault_tool_delay_after_commit_s=HOLD_S)
        say(f"started worker (pid {doomed.pid}) holding each tool call open after its commit")
        caller, conversation_id = await logged_in_caller(stack.url)
        text = "add a todo buy bread"
        turn = asyncio.create_task(caller.say(text))
        await stack.wait_log(doomed, hold_line("tool create_todo after its commit"), timeout=30)
        todos, runs = await stack.rows("buy bread")
        pid = await kill9(doomed)
        killed = time.monotonic()
        say(
            f"killed worker (pid {pid}) in the tool call, after its commit "
            f"(todo rows: {todos}, tool_executions rows: {runs})"
        )
        assert (todos, runs) == (1, 1)
        heir = await stack.start_worker()
        say(f"started a new worker (pid {heir.pid})")
        reply = await asyncio.wait_for(turn, TURN_S)
        say(
            f"turn completed {time.monotonic() - killed:.1f} s after the kill: "
            f"answered {reply['assistant']!r}"
        )
        assert reply["tool_calls"][0]["name"] == "create_todo" and reply["tool_calls"][0]["ok"]
        await _check_once(stack, conversation_id, text, "buy bread", [reply])
        await _check_took_over(stack, conversation_id, doomed, heir)
        await caller.close()


async def test_killed_while_speaking(stack: Stack) -> None:
    """kill -9 the worker mid reply, while the caller hears it."""
    async with asyncio.timeout(CASE_S):
        doomed = await stack.start_worker(fault_speak_delay_s=HOLD_S)
        say(f"started worker (pid {doomed.pid}) pausing each reply after its first audio")
        caller, conversation_id = await logged_in_caller(stack.url)
        text = "add a todo to call the plumber"
        turn = asyncio.create_task(caller.request("text_turn", {"text": text, "speak": True}))
        await stack.wait_log(doomed, hold_line("the reply mid sentence"), timeout=30)
        ack = await asyncio.wait_for(turn, 30)  # the answer is known; it is being spoken
        assert ack["ok"], ack
        reply = ack["data"]
        key = reply["turn_key"]
        await caller.wait_for("timings", timeout=10, turn_key=key)  # its first audio arrived
        heard_before = len(caller.audio[key])
        pid = await kill9(doomed)
        killed = time.monotonic()
        say(
            f"killed worker (pid {pid}) mid reply: the caller had "
            f"{heard_before // SAMPLE_BYTES * 1000 // SAMPLE_RATE} ms of {reply['assistant']!r}"
        )
        heir = await stack.start_worker()
        say(f"started a new worker (pid {heir.pid})")
        done = await caller.wait_for("audio_done", timeout=TURN_S, turn_key=key)
        sentences, offsets = await _out_stream(stack, conversation_id, key)
        heard = len(caller.audio[key]) // FRAME_BYTES
        say(
            f"reply finished {time.monotonic() - killed:.1f} s after the kill "
            f"(interrupted: {done['interrupted']}); sentence marks in its audio stream: "
            f"{sentences}; frames: {len(offsets)} at 0..{offsets[-1]} ms, "
            f"each offset once: {offsets == list(range(0, len(offsets) * FRAME_MS, FRAME_MS))}; "
            f"the caller got {heard} frames"
        )
        assert not done["interrupted"]
        assert sentences == [reply["assistant"]], "each sentence spoken once"
        assert offsets == list(range(0, len(offsets) * FRAME_MS, FRAME_MS)), "no gap, no repeat"
        assert heard == len(offsets), "the caller got each frame once"
        await _check_once(stack, conversation_id, text, "call the plumber", [reply])
        await _check_took_over(stack, conversation_id, doomed, heir)
        await caller.close()


async def _out_stream(
    stack: Stack, conversation_id: str, turn_key: str
) -> tuple[list[str], list[int]]:
    """The sentence marks and the audio frames' offsets (ms) in the turn's audio stream."""
    client = streams.binary_client(stack.settings.effective_redis_url)
    try:
        entries: Any = await client.xrange(streams.key(conversation_id, turn_key, "out"))
    finally:
        await client.aclose()
    sentences = [fields[b"sentence"].decode() for _, fields in entries if b"sentence" in fields]
    offsets = [int(fields[b"ms"]) for _, fields in entries if b"pcm" in fields]
    return sentences, offsets


@pytest.mark.parametrize("setting", FAULT_SETTINGS)
def test_fault_hooks_are_refused_in_production(setting: str) -> None:
    """The fault hooks cannot be turned on in production."""
    with pytest.raises(ConfigError, match=f"{setting.upper()} must be 0 in production") as error:
        load_settings(convonet_env="production", pin_pepper="a-real-secret", **{setting: 1})
    say(f"production with {setting.upper()}=1 refused: {error.value}")
    assert (
        getattr(load_settings(convonet_env="production", pin_pepper="a-real-secret"), setting) == 0
    )
