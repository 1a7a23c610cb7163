"""The whole product in the bench's own process: the API on a fresh loopback port and a
worker on its own task queue, against the database, Redis and Temporal of the settings.

`convonet bench bridge --mode twilio` needs a system configured for Twilio; rather than
ask for one, it runs this one with Twilio settings that point at its own Twilio peer. The
task queue is new each time, so the running system's worker never picks up its tasks
(nor this worker the running system's)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from temporalio.client import Client

from convonet.settings import Settings
from convonet.temporal_client import connect

START_TIMEOUT_S = 20.0


@dataclass
class InProcessSystem:
    settings: Settings
    client: Client
    url: str


def bench_task_queue(settings: Settings) -> str:
    return f"{settings.temporal_task_queue}-bench-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def in_process_system(settings: Settings) -> AsyncIterator[InProcessSystem]:
    """Runs API and worker with `settings` (their public address filled in) until exit."""
    from api.app import create_app
    from worker import running_worker

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    # The worker builds callback URLs (Twilio's) from the API's public address.
    settings = settings.model_copy(
        update={"public_base_url": url, "api_host": "127.0.0.1", "api_port": port}
    )
    client = await asyncio.wait_for(connect(settings, with_agent_plugin=True), 10)
    config = uvicorn.Config(
        create_app(settings), log_level="warning", lifespan="on", ws_max_size=1 << 20
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        started = time.monotonic()
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the in-process API stopped before it started")
            if time.monotonic() - started > START_TIMEOUT_S:
                raise TimeoutError("the in-process API did not start")
            await asyncio.sleep(0.02)
        async with running_worker(client, settings):
            yield InProcessSystem(settings, client, url)
    finally:
        server.should_exit = True
        await task
        sock.close()
