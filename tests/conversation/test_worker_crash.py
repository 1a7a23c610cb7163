"""Kill -9 the worker while a tool activity runs: a new worker finishes the turn, once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from sqlalchemy import func, select

from convonet.call_client import ScriptedCaller
from convonet.db.models import Todo, ToolExecution
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from convonet.temporal_client import connect
from tests.processes import process_env
from tests.system import free_port, run_api
from worker import running_worker


def _worker_process(settings: Settings, fault_delay_s: float) -> subprocess.Popen[bytes]:
    env = process_env(settings, free_port(), log_level="WARNING")
    env["FAULT_TOOL_DELAY_AFTER_COMMIT_S"] = str(fault_delay_s)
    return subprocess.Popen(
        [sys.executable, "-m", "convonet.cli", "worker"], env=env, start_new_session=True
    )


async def _todo_count(settings: Settings, title: str) -> int:
    async with session_scope(settings.effective_database_url) as session:
        return int(await session.scalar(select(func.count()).where(Todo.title == title)) or 0)


async def test_worker_killed_mid_tool_turn_completes_once(settings: Settings) -> None:
    await seed(settings)
    doomed = _worker_process(settings, fault_delay_s=30)
    try:
        async with run_api(settings) as url:
            caller = ScriptedCaller(url)
            await caller.connect()
            await caller.login("1234")
            turn = asyncio.create_task(caller.say("add a todo buy bread"))
            # The tool has committed its row and is now stalled inside the activity.
            for _ in range(300):
                if await _todo_count(settings, "buy bread"):
                    break
                await asyncio.sleep(0.1)
            assert await _todo_count(settings, "buy bread") == 1
            assert not turn.done()
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()

            client = await connect(settings, with_agent_plugin=True)
            async with running_worker(client, settings):
                reply = await asyncio.wait_for(turn, timeout=60)
            await caller.close()
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)
    assert reply["tool_calls"][0]["name"] == "create_todo"
    assert reply["tool_calls"][0]["ok"] is True
    assert await _todo_count(settings, "buy bread") == 1
    async with session_scope(settings.effective_database_url) as session:
        executions = await session.scalar(select(func.count()).select_from(ToolExecution))
    assert executions == 1
