"""Every committed history replays on the current code; an incompatible change is caught."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.client import WorkflowHistory

from convonet.replay import replay_histories
from workflows.conversation.models import ConversationInput, ConversationStatus
from workflows.conversation.workflow import ConversationWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
SCENARIOS = (
    "failed_then_good_login",
    "multi_turn_tools",
    "transfer_request",
    "continue_as_new",
    "voice_barge_in",
    "transfer_answered",
    "transfer_answered_child",
)
# Histories recorded by earlier versions of the workflows, kept to prove that calls in
# flight during a deploy still replay (e.g. through a `workflow.patched` branch).
LEGACY = HISTORIES / "legacy"


def _committed() -> list[WorkflowHistory]:
    return [
        WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
        for path in sorted(HISTORIES.glob("*.json"))
    ]


def test_every_scenario_has_a_committed_history() -> None:
    names = {path.stem.split("-run")[0] for path in HISTORIES.glob("*.json")}
    assert names == set(SCENARIOS)
    assert len(list(HISTORIES.glob("continue_as_new-run*.json"))) >= 2


async def test_committed_histories_replay_on_current_code() -> None:
    histories = _committed()
    results = await replay_histories(histories)
    assert results.replay_failures == {}


async def test_histories_of_earlier_versions_still_replay() -> None:
    """A transfer requested before transfers became a child workflow replays unchanged."""
    histories = [
        WorkflowHistory.from_json(f"legacy-{path.stem}", path.read_text())
        for path in sorted(LEGACY.glob("*.json"))
    ]
    assert histories
    results = await replay_histories(histories)
    assert results.replay_failures == {}


@workflow.defn(name="ConversationWorkflow", sandboxed=False)
class ReorderedConversationWorkflow(ConversationWorkflow):
    """A deliberately incompatible change: a timer before anything else happens."""

    @workflow.run
    async def run(self, input: ConversationInput) -> ConversationStatus:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)


async def test_incompatible_change_fails_replay() -> None:
    histories = [h for h in _committed() if not h.workflow_id.endswith("_child")]
    results = await replay_histories(histories, workflows=[ReorderedConversationWorkflow])
    assert len(results.replay_failures) == len(histories)
    assert all(
        "Nondeterminism" in type(e).__name__ or "nondetermin" in str(e).lower()
        for e in results.replay_failures.values()
    )
