"""The chaos suite's process harness: the real stack, as separate OS processes on loopback.

The session owns a Temporal dev server persisting to a file and a redis-server with an
append-only file (both started as `convonet dev` starts them), so either can be restarted
without losing state. Each case gets a fresh PostgreSQL database, an empty Redis, its own
task queue and its own `convonet api` and `convonet worker` processes, configured through
environment variables like a deployment. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from activities.faults import HOLD_MESSAGE
from convonet.db.models import Todo, ToolExecution
from convonet.db.session import session_scope
from convonet.dev_supervisor import ManagedProcess, http_answers, redis_process, temporal_process
from convonet.settings import Settings
from convonet.temporal_client import connect
from tests.system import free_port
from workflows.conversation.models import TranscriptEntry, workflow_id_for
from workflows.conversation.workflow import ConversationWorkflow

CONVONET = str(Path(sys.executable).parent / "convonet")
HOST = socket.gethostname()
# Bounds: a process must answer within these, and a whole case must finish within CASE_S.
TEMPORAL_READY_S = 60.0
REDIS_READY_S = 15.0
API_READY_S = 60.0
WORKER_READY_S = 60.0
CASE_S = 150.0
LOG_TAIL_LINES = 40


def say(message: str) -> None:
    """One line of what a case did or checked."""
    print(f"    {message}", flush=True)


def hold_line(phase: str) -> str:
    """What a worker with a FAULT_* hold logs once it holds `phase` open."""
    return HOLD_MESSAGE.split("%s")[0] + phase


# ---- processes -----------------------------------------------------------------------


async def wait_until(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Polls `check` (sync or async) until it returns something truthy, for `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(interval)


async def start_process(process: ManagedProcess, log_dir: Path, timeout: float) -> None:
    """Starts it and waits (bounded) until its readiness check passes."""
    process.start(log_dir)

    async def ready() -> bool:
        code = process.exit_code()
        if code is not None:
            raise RuntimeError(f"{process.name} exited with code {code} while starting")
        # The checks block (one runs its own event loop), so they run in a thread.
        return await asyncio.to_thread(process.ready)

    await wait_until(ready, timeout, f"{process.name} to answer", interval=0.2)


async def kill9(process: ManagedProcess) -> int:
    """kill -9 of the process and everything it started (its process group)."""
    assert process.popen is not None
    pid = process.popen.pid
    os.killpg(pid, signal.SIGKILL)
    await asyncio.to_thread(process.popen.wait, 10)
    process.stop()  # closes its log; the group is already gone
    return pid


async def stop(process: ManagedProcess) -> None:
    await asyncio.to_thread(process.stop, 10.0)


def log_of(process: ManagedProcess, log_dir: Path) -> str:
    path = log_dir / f"{process.name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


class Infrastructure:
    """The session's Temporal dev server and redis-server, restartable in place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_dir = root / "logs"
        # The dev supervisor's own recipes: the same flags as `convonet dev` uses.
        self.layout = Settings(
            data_dir=root,
            temporal_address=f"127.0.0.1:{free_port()}",
            temporal_ui_port=free_port(),
            embedded_redis_port=free_port(),
        )
        self.temporal = temporal_process(self.layout)
        self.redis = redis_process(self.layout)
        self.temporal_address = self.layout.temporal_address
        self.redis_url = f"redis://127.0.0.1:{self.layout.embedded_redis_port}/0"
        self.db_file = root / "temporal.db"

    async def start(self) -> None:
        await start_process(self.redis, self.log_dir, REDIS_READY_S)
        await start_process(self.temporal, self.log_dir, TEMPORAL_READY_S)

    async def restart_redis(self, down_s: float = 0.0) -> float:
        """Stops redis-server (SIGTERM: it writes its append-only file), waits `down_s`, and
        starts it again on the same port and directory; returns how long Redis was gone."""
        began = time.monotonic()
        await stop(self.redis)
        await asyncio.sleep(down_s)
        await start_process(self.redis, self.log_dir, REDIS_READY_S)
        return time.monotonic() - began

    async def stop_temporal(self) -> None:
        await stop(self.temporal)

    async def start_temporal(self) -> None:
        """Starts the dev server again on the same port and --db-filename."""
        await start_process(self.temporal, self.log_dir, TEMPORAL_READY_S)

    async def close(self) -> None:
        await stop(self.temporal)
        await stop(self.redis)


class Stack:
    """One case's API and workers, talking to the session's Temporal and Redis."""

    def __init__(self, infra: Infrastructure, settings: Settings, log_dir: Path) -> None:
        self.infra = infra
        self.settings = settings
        self.log_dir = log_dir
        self.url = settings.public_base_url
        self.api: ManagedProcess | None = None
        self.workers: list[ManagedProcess] = []
        self.extra_env: dict[str, str] = {}
        self._client: Client | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """The processes' configuration, as a deployment passes it: environment variables."""
        s = self.settings
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("FAULT_", "DEEPGRAM_", "ANTHROPIC_", "TWILIO_"))
        }
        env.update(
            PYTHONUNBUFFERED="1",
            CONVONET_ENV="test",
            LOG_LEVEL="INFO",
            DATA_DIR=str(s.data_dir),
            DATABASE_URL=s.effective_database_url,
            REDIS_URL=s.effective_redis_url,
            TEMPORAL_ADDRESS=s.temporal_address,
            TEMPORAL_NAMESPACE=s.temporal_namespace,
            TEMPORAL_TASK_QUEUE=s.temporal_task_queue,
            API_HOST="127.0.0.1",
            API_PORT=str(s.api_port),
            PUBLIC_BASE_URL=s.public_base_url,
            PIN_PEPPER=s.pin_pepper,
            WORKER_METRICS_PORT="0",
            # One decoder process per worker: the machine is small and shared.
            POCKETSPHINX_PROCESSES="1",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    async def temporal(self) -> Client:
        if self._client is None:
            self._client = await asyncio.wait_for(connect(self.settings), timeout=10)
        return self._client

    # ---- processes ------------------------------------------------------------------

    async def start_api(self) -> None:
        health = f"{self.url}/healthz"
        self.api = ManagedProcess(
            "api", [CONVONET, "api"], ready=lambda: http_answers(health), env=self.env()
        )
        await start_process(self.api, self.log_dir, API_READY_S)

    async def configure(self, **env: str) -> None:
        """Adds settings (by environment variable) for every process, and restarts the API
        with them."""
        self.extra_env.update(env)
        if self.api is not None:
            await stop(self.api)
        await self.start_api()

    async def start_worker(self, **faults: float) -> ManagedProcess:
        """A `convonet worker` process, once it polls the task queue. `faults` are FAULT_*
        settings by name (`fault_llm_delay_s=30`)."""
        extra = {name.upper(): str(value) for name, value in faults.items()}
        worker = ManagedProcess(
            f"worker-{len(self.workers) + 1}", [CONVONET, "worker"], env=self.env(**extra)
        )
        self.workers.append(worker)
        await start_process(worker, self.log_dir, WORKER_READY_S)
        await wait_until(
            lambda: self.polling(worker), WORKER_READY_S, f"{worker.name} to poll", interval=0.3
        )
        return worker

    async def polling(self, worker: ManagedProcess) -> bool:
        if worker.exit_code() is not None:
            raise RuntimeError(f"{worker.name} exited with code {worker.exit_code()}")
        client = await self.temporal()
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.settings.temporal_namespace,
                task_queue=TaskQueue(name=self.settings.temporal_task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return identity(worker) in {poller.identity for poller in response.pollers}

    async def wait_log(self, process: ManagedProcess, needle: str, timeout: float) -> None:
        await wait_until(
            lambda: needle in log_of(process, self.log_dir),
            timeout,
            f"{process.name} to log {needle!r}",
        )

    def log(self, process: ManagedProcess) -> str:
        return log_of(process, self.log_dir)

    async def close(self, failed: bool) -> None:
        processes = [*self.workers, *([self.api] if self.api else [])]
        for process in processes:
            await stop(process)
        if failed:
            for process in processes:
                lines = self.log(process).splitlines()[-LOG_TAIL_LINES:]
                print(f"---- last lines of {process.name}.log", flush=True)
                print("\n".join(lines), flush=True)

    # ---- what the cases check -------------------------------------------------------

    async def rows(self, title: str) -> tuple[int, int]:
        """Todo rows with `title`, and every tool_executions row."""
        async with session_scope(self.settings.effective_database_url) as db:
            todos = await db.scalar(select(func.count()).where(Todo.title == title))
            runs = await db.scalar(select(func.count()).select_from(ToolExecution))
        return int(todos or 0), int(runs or 0)

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        handle = (await self.temporal()).get_workflow_handle(workflow_id_for(conversation_id))
        return await handle.query(ConversationWorkflow.transcript)

    async def task_identities(self, conversation_id: str) -> list[str]:
        """Who completed the conversation's workflow tasks and activities, in order."""
        handle = (await self.temporal()).get_workflow_handle(workflow_id_for(conversation_id))
        history = await handle.fetch_history()
        found: list[str] = []
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                found.append(event.workflow_task_completed_event_attributes.identity)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                found.append(event.activity_task_started_event_attributes.identity)
        return found


def identity(worker: ManagedProcess) -> str:
    """The worker's Temporal identity (the SDK's default: pid@host)."""
    return f"{worker.pid}@{HOST}"
