"""What an operator sees: activity summaries, current details and searchable calls."""

from __future__ import annotations

import asyncio

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.contrib.pydantic import pydantic_data_converter

from convonet.call_client import ScriptedCaller
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import payload_text, running_system
from workflows.conversation.models import workflow_id_for


async def test_summaries_details_and_search_attributes(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        await caller.login("1234")
        await caller.say("add a todo buy milk")
        await caller.say("transfer me to sales because of pricing")
        handle = system.client.get_workflow_handle(workflow_id_for(status["conversation_id"]))

        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "transferring" in metadata.current_details
        assert "Alice Martin" in metadata.current_details and "sales" in metadata.current_details

        history = await handle.fetch_history()
        converter = pydantic_data_converter.payload_converter
        summaries = [
            converter.from_payload(e.user_metadata.summary, str)
            for e in history.events
            # Activities and local activities (markers) both carry a readable summary.
            if (
                e.HasField("activity_task_scheduled_event_attributes")
                or e.HasField("marker_recorded_event_attributes")
            )
            and e.user_metadata.HasField("summary")
        ]
        assert summaries[0] == "verify PIN"
        assert 'tool create_todo: "buy milk"' in summaries
        assert 'llm: "add a todo buy milk"' in summaries
        assert any(s.startswith("tool transfer_to_agent") for s in summaries)
        assert "1234" not in payload_text(history)

        query = (
            f"WorkflowId = '{handle.id}' AND ConvonetState = 'transferring' "
            "AND ConvonetTransferred = true AND ConvonetUserId = '1'"
        )
        found: list[str] = []
        for _ in range(50):
            found = [w.id async for w in system.client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.2)
        assert found == [handle.id]
        await caller.close()
