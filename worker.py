"""The Temporal worker: runs the conversation workflow and every activity."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from prometheus_client import start_http_server
from temporalio.client import Client
from temporalio.worker import Worker

from activities import runtime
from activities.agent_nodes import llm_node, tool_node
from activities.auth import close_session, verify_pin
from activities.speech import reply_text, speak, transcribe
from activities.transfer import (
    announce,
    dial_agent,
    hang_up_agent,
    record_transfer,
    route_transfer,
)
from convonet.settings import Settings
from convonet.temporal_client import connect
from workflows.conversation.workflow import ConversationWorkflow
from workflows.transfer.workflow import TransferWorkflow

log = logging.getLogger("convonet.worker")

WORKFLOWS: list[type] = [ConversationWorkflow, TransferWorkflow]
ACTIVITIES: list[Callable[..., Any]] = [
    verify_pin,
    close_session,
    transcribe,
    speak,
    reply_text,
    llm_node,
    tool_node,
    route_transfer,
    record_transfer,
    dial_agent,
    hang_up_agent,
    announce,
]


def build_worker(client: Client, settings: Settings) -> Worker:
    """A worker on the configured task queue; the agent graph's node activities come from
    the LangGraph plugin the client was connected with."""
    runtime.configure(settings)
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """The worker, polling while the block runs; afterwards the engines' processes and
    connections are released, so a process that runs one worker after another (tests, the
    benches) keeps none of them."""
    worker = build_worker(client, settings)
    try:
        async with worker:
            yield worker
    finally:
        await runtime.shutdown()


def serve_metrics(settings: Settings) -> Callable[[], None] | None:
    """Serves this process's metrics (tool timings) for Prometheus; returns how to stop.

    A port already in use (a second worker on the same host) costs the metrics, not the
    worker: it logs and carries on.
    """
    if not settings.worker_metrics_port:
        return None
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as error:
        log.warning("worker metrics not served on %s:%s: %s", host, port, error)
        return None
    log.info("worker metrics at http://%s:%s/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


async def run_worker(settings: Settings) -> None:
    client = await connect(settings, with_agent_plugin=True)
    stop_metrics = serve_metrics(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker polling task queue %s at %s",
        settings.temporal_task_queue,
        settings.temporal_address,
    )
    try:
        async with running_worker(client, settings):
            await stop.wait()
            log.info("worker stopping: finishing in-flight activities")
    finally:
        if stop_metrics is not None:
            stop_metrics()
