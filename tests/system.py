"""The whole product, in-process, against the test's Temporal, PostgreSQL and Redis.

Worker and API run as real servers on loopback; tests talk to them through the public
Socket.IO interface, exactly as a browser or `convonet call` does.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory

from api.app import create_app
from convonet.call_client import ScriptedCaller
from convonet.settings import Settings
from convonet.temporal_client import connect
from worker import running_worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningSystem:
    settings: Settings
    client: Client
    url: str


@asynccontextmanager
async def run_api(settings: Settings, port: int | None = None) -> AsyncIterator[str]:
    port = port or free_port()
    settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    # As `convonet api` does: a connection that will not close is cancelled after 5 s
    # rather than hold the shutdown (and the test) forever.
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running_system(
    settings: Settings, with_worker: bool = True
) -> AsyncIterator[RunningSystem]:
    # The worker builds callback URLs (Twilio webhooks) from the API's public address.
    port = free_port()
    settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    client = await connect(settings, with_agent_plugin=True)
    async with run_api(settings, port) as url:
        if with_worker:
            async with running_worker(client, settings):
                yield RunningSystem(settings, client, url)
        else:
            yield RunningSystem(settings, client, url)


async def logged_in_caller(url: str) -> tuple[ScriptedCaller, str]:
    """A caller connected to the API at `url` and logged in as the demo user; and the id of
    their conversation."""
    caller = ScriptedCaller(url)
    status = await caller.connect()
    await caller.login("1234")
    return caller, str(status["conversation_id"])


def payload_text(history: WorkflowHistory) -> str:
    """Every payload of a history, decoded: what a Temporal UI user could read in it.

    Searching these (rather than the raw JSON) keeps timestamps and ids from matching a PIN.
    """
    found: list[str] = []

    def visit(item: object) -> None:
        if isinstance(item, Payload):
            found.append(item.data.decode("utf-8", "replace"))
        elif isinstance(item, Message):
            for field, value in item.ListFields():
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    values = list(value.values())
                elif field.is_repeated:
                    values = list(value)
                else:
                    values = [value]
                for child in values:
                    visit(child)

    for event in history.events:
        visit(event)
    return "\n".join(found)
