"""Replay conversation histories against the current workflow code.

Used by the test suite for the committed histories and by `convonet replay` for the most
recent live calls, so a deploy is checked against conversations in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, WorkflowReplayResults

from convonet.settings import Settings
from convonet.temporal_client import agent_plugin, connect
from workflows.conversation.workflow import ConversationWorkflow
from workflows.transfer.workflow import TransferWorkflow

WORKFLOWS: tuple[type, ...] = (ConversationWorkflow, TransferWorkflow)


def replayer(workflows: Iterable[type] = WORKFLOWS) -> Replayer:
    return Replayer(
        workflows=list(workflows),
        plugins=[agent_plugin()],
        data_converter=pydantic_data_converter,
    )


async def replay_histories(
    histories: list[WorkflowHistory], workflows: Iterable[type] = WORKFLOWS
) -> WorkflowReplayResults:
    async def stream() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    return await replayer(workflows).replay_workflows(stream(), raise_on_replay_failure=False)


async def replay_recent(settings: Settings, latest: int) -> int:
    client = await connect(settings)
    histories: list[WorkflowHistory] = []
    async for execution in client.list_workflows(
        "WorkflowType = 'ConversationWorkflow' OR WorkflowType = 'TransferWorkflow'", limit=latest
    ):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        histories.append(await handle.fetch_history())
    if not histories:
        print("no conversation histories found")
        return 0
    results = await replay_histories(histories)
    failures = 0
    for history in histories:
        failure = results.replay_failures.get(history.run_id)
        failures += failure is not None
        verdict = f"FAILED: {failure}" if failure else "ok"
        print(f"{history.workflow_id}  {verdict}")
    print(f"replayed {len(histories)} histories, {failures} failed")
    return 1 if failures else 0
