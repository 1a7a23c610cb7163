"""Kill -9 the worker while the caller is still speaking: the retried transcription re-reads
the utterance, which Redis kept whole, and it is transcribed in full and answered once."""

from __future__ import annotations

import os
import signal

from sqlalchemy import func, select

from convonet.call_client import ScriptedCaller
from convonet.db.models import Todo
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import SAMPLE_BYTES, SAMPLE_RATE, silence
from convonet.temporal_client import connect
from tests.conversation.test_worker_crash import _worker_process
from tests.speech_samples import speak
from tests.system import run_api
from worker import running_worker


async def test_worker_killed_mid_utterance_loses_nothing(settings: Settings) -> None:
    await seed(settings)
    utterance = speak("create a todo to buy milk") + silence(1500)
    half = len(utterance) // 2 // SAMPLE_BYTES * SAMPLE_BYTES
    doomed = _worker_process(settings, fault_delay_s=0)
    try:
        async with run_api(settings) as url:
            caller = ScriptedCaller(url)
            await caller.connect()
            await caller.login("1234")
            await caller.open_mic()
            await caller.stream(utterance[:half])
            start = await caller.wait_for("speech", event="start")
            key = start["turn_key"]
            # The doomed worker is transcribing: its interim results are arriving.
            await caller.wait_for("transcript", turn_key=key, final=False)
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
            await caller.stream(utterance[half:])

            client = await connect(settings, with_agent_plugin=True)
            async with running_worker(client, settings):
                reply = await caller.wait_for("reply", turn_key=key, timeout=60)
                await caller.wait_for("audio_done", turn_key=key, timeout=30)
            await caller.close()
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)
    assert reply["user"] == "create a todo to buy milk"
    assert [c["name"] for c in reply["tool_calls"]] == ["create_todo"]
    async with session_scope(settings.effective_database_url) as session:
        count = await session.scalar(
            select(func.count()).select_from(Todo).where(Todo.title == "buy milk")
        )
    assert count == 1
    assert len(caller.audio[key]) > SAMPLE_RATE * SAMPLE_BYTES // 2, "the reply was spoken"
