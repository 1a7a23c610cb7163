"""Spoken turns end to end through the public socket: eSpeak NG speech in, the edge's VAD,
transcription from the Redis stream, the agent, spoken reply frames out."""

from __future__ import annotations

import asyncio

import numpy as np
from sqlalchemy import select

from convonet.call_client import ScriptedCaller
from convonet.db.models import Todo, User
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import FRAME_BYTES, SAMPLE_RATE, rms, silence
from tests.speech_samples import speak
from tests.system import payload_text, running_system
from workflows.conversation.models import workflow_id_for

# Faster than real time, within the edge's default frame-rate limit (twice real time).
FAST = 1.8


async def _todos(settings: Settings, name: str) -> list[str]:
    async with session_scope(settings.effective_database_url) as session:
        user = await session.scalar(select(User).where(User.name == name))
        assert user is not None
        rows = await session.scalars(select(Todo.title).where(Todo.creator_id == user.id))
        return list(rows)


async def test_spoken_todo_is_created_and_answered_aloud(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        await caller.connect()
        await caller.login("1234")
        reply = await caller.speak(speak("create a todo to buy milk"))
        await caller.close()

    assert reply["user"] == "create a todo to buy milk"
    assert [c["name"] for c in reply["tool_calls"]] == ["create_todo"]
    assert "buy milk" in await _todos(settings, "Alice Martin")
    key = reply["turn_key"]
    finals = [e for e in caller.events["transcript"] if e["turn_key"] == key and e["final"]]
    assert finals and finals[-1]["text"] == "create a todo to buy milk"
    audio = bytes(caller.audio[key])
    assert len(audio) >= SAMPLE_RATE * 2 // 2 and len(audio) % FRAME_BYTES == 0
    assert rms(audio) > 300, "the reply audio is silent"
    timings = reply["timings"]
    assert timings is not None
    for part in ("end_of_speech_ms", "stt_final_ms", "llm_first_token_ms", "voice_to_voice_ms"):
        assert timings[part] is not None and timings[part] >= 0, part
    stages = [e["stage"] for e in caller.events["stage"] if e["turn_key"] == key]
    assert stages[:2] == ["listening", "thinking"] and stages[-2:] == ["speaking", "idle"]


async def test_five_turn_voice_call_history_stays_small(settings: Settings) -> None:
    await seed(settings)
    lines = [
        "create a todo to buy milk",
        "what's on my list",
        "remind me to call mom tomorrow at ten",
        "what's on my calendar today",
        "thank you",
    ]
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        await caller.login("1234")
        replies = [await caller.speak(speak(line), speed=FAST) for line in lines]
        await caller.close()
        handle = system.client.get_workflow_handle(workflow_id_for(status["conversation_id"]))
        transcript = await handle.query("transcript")
        history = await handle.fetch_history()
        described = await handle.describe()

    assert all(r["user"] for r in replies)
    # Temporal's own figure: the history as the server stores and limits it.
    size = described.raw_description.workflow_execution_info.history_size_bytes
    as_json = len(history.to_json().encode())
    print(
        f"\n5-turn voice call: {len(history.events)} events, {size / 1024:.1f} KB of history"
        f" ({as_json / 1024:.1f} KB as exported JSON)"
    )
    assert size < 40 * 1024
    text = payload_text(history)
    assert "pcm" not in text
    spoken = [e for e in transcript if e["role"] == "assistant" and e.get("timings")]
    assert len(spoken) == 5, "every spoken reply records its timings with the turn"


async def test_bad_frames_are_refused_and_the_call_goes_on(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        await caller.connect()
        ns = "/caller"
        await caller.sio.emit(
            "audio_frame", {"seq": 0, "rate": 16000, "pcm": b"\0" * 640}, namespace=ns
        )
        refused = await caller.wait_for("error", code="not_authenticated")
        assert "Log in" in refused["message"]
        await caller.login("1234")
        await caller.open_mic()
        bad = [
            {"seq": 1, "rate": 16000, "pcm": b"\0" * 10_000},  # oversized
            {"seq": 2, "rate": 8000, "pcm": b"\0" * 640},  # wrong rate
            {"seq": 3, "rate": 16000, "pcm": "not bytes"},  # malformed
        ]
        for index, frame in enumerate(bad):
            await caller.sio.emit("audio_frame", frame, namespace=ns)
            await caller.wait_for("error", code="bad_audio")
            caller.events["error"].clear()
            if index < len(bad) - 1:
                await asyncio.sleep(1.05)  # refusals are reported at most once a second
        caller._seq = 10
        reply = await caller.speak(speak("what's on my list"), speed=FAST)
        assert reply["user"] == "what's on my list"
        # An out-of-order frame after that is refused too.
        await asyncio.sleep(1.05)
        await caller.sio.emit(
            "audio_frame", {"seq": 1, "rate": 16000, "pcm": silence(20)}, namespace=ns
        )
        await caller.wait_for("error", code="bad_audio")
        await caller.close()


async def test_flood_of_frames_is_shed_with_rate_limit(settings: Settings) -> None:
    await seed(settings)
    settings = settings.model_copy(update={"audio_max_frames_per_s": 20})
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        await caller.connect()
        await caller.login("1234")
        await caller.open_mic()
        await caller.stream(silence(2000), speed=0)
        limited = await caller.wait_for("error", code="rate_limited")
        assert "dropped" in limited["message"]
        ack = await caller.request("mic", {"open": False})
        assert ack["ok"], "the connection survives a flood"
        await caller.close()


async def test_barge_in_stops_the_reply_and_records_what_was_heard(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        await caller.login("1234")
        for title in ("buy milk", "walk the dog", "water the plants", "pay the rent"):
            await caller.say(f"add a todo {title}")
        await caller.open_mic()
        await caller.stream(speak("what's on my list") + silence(600), speed=FAST)
        start = await caller.wait_for("speech", event="start")
        key = start["turn_key"]
        await caller.wait_for("timings", turn_key=key)  # the reply is playing
        ack = await caller.request("barge_in", {"turn_key": key, "played_ms": 700})
        assert ack["ok"]
        # Synthesis runs ahead of playback: the speaker has often written the whole reply
        # (and the edge relayed it) before the page interrupts, so the heard part must be
        # recorded either way; `interrupted` only says whether audio was still on its way.
        await caller.wait_for("audio_done", turn_key=key)
        handle = system.client.get_workflow_handle(workflow_id_for(status["conversation_id"]))
        for _ in range(100):
            transcript = await handle.query("transcript")
            entry = transcript[-1]
            if entry.get("heard") is not None:
                break
            await asyncio.sleep(0.1)
        await caller.close()
    assert entry["role"] == "assistant"
    heard = entry["heard"]
    assert heard and len(heard) < len(entry["text"])
    assert entry["text"].startswith(heard.split()[0])


def test_speech_samples_are_real_speech() -> None:
    pcm = speak("create a todo to buy milk")
    samples = np.frombuffer(pcm, dtype="<i2")
    assert 0.8 < len(samples) / SAMPLE_RATE < 4
    assert rms(pcm) > 500
