"""SIGTERM on a worker in the middle of a tool: it stops polling, finishes the work it
holds, reports it and exits cleanly; the turn completes once, with one row, and the next
turn goes to the next worker."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import func, select

from convonet.call_client import ScriptedCaller
from convonet.db.models import Todo, ToolExecution
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from convonet.temporal_client import connect
from tests.processes import process_env, start, stop
from tests.system import free_port, run_api
from worker import running_worker

TOOL_PAUSE_S = 4  # well inside the worker's graceful shutdown timeout (10 s)


async def _count(settings: Settings, model: type[Todo] | type[ToolExecution]) -> int:
    query = select(func.count()).select_from(model)
    if model is ToolExecution:
        query = query.where(ToolExecution.tool == "create_todo")
    async with session_scope(settings.effective_database_url) as session:
        return int(await session.scalar(query) or 0)


async def test_sigterm_finishes_the_activity_in_flight(settings: Settings, tmp_path: Path) -> None:
    await seed(settings)
    env = process_env(settings, free_port())
    env["FAULT_TOOL_DELAY_AFTER_COMMIT_S"] = str(TOOL_PAUSE_S)
    log = tmp_path / "worker.log"
    stopping = start("worker", env, log)
    try:
        async with run_api(settings) as url:
            caller = ScriptedCaller(url)
            await caller.connect()
            await caller.login("1234")
            turn = asyncio.create_task(caller.say("add a todo buy bread"))
            for _ in range(300):
                if await _count(settings, Todo):
                    break
                await asyncio.sleep(0.1)
            assert await _count(settings, Todo) == 1, "the tool committed and now pauses"

            # The worker is told to stop while the tool activity is still running.
            loop = asyncio.get_running_loop()
            code = await loop.run_in_executor(None, stop, stopping, signal.SIGTERM)
            assert code == 0
            assert "finishing in-flight activities" in log.read_text()
            # The next worker answers the turn (the stopping one may already have: the tool
            # is a local activity inside the workflow task it finished) and the next one.
            client = await connect(settings, with_agent_plugin=True)
            async with running_worker(client, settings):
                reply = await asyncio.wait_for(turn, timeout=60)
                listed = await asyncio.wait_for(caller.say("what are my todos"), timeout=60)
            await caller.close()
    finally:
        stop(stopping, signal.SIGKILL)
    assert reply["tool_calls"][0]["name"] == "create_todo" and reply["tool_calls"][0]["ok"]
    assert await _count(settings, Todo) == 1
    assert await _count(settings, ToolExecution) == 1
    assert "buy bread" in listed["assistant"]
    assert "Traceback" not in log.read_text()
