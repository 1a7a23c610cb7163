"""The agent graph: an LLM step, then each requested tool call as its own activity.

Registered with the LangGraph plugin under GRAPH_NAME; the workflow compiles it by name.
The nodes run in the workflow and call their I/O as local activities: the graph's state
(memory, context) is then never written into the history as activity input, only each
step's result, and the steps of a turn need no extra round trips through the server.
"""

from __future__ import annotations

import operator
from datetime import timedelta
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from temporalio import workflow
from temporalio.common import RetryPolicy

from activities.agent_nodes import llm_node, tool_node

GRAPH_NAME = "convonet-agent"
SUMMARY_CHARS = 60


class AgentState(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]
    context: dict[str, Any]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def summarize_llm(state: dict[str, Any]) -> str:
    messages = state["messages"]
    last = messages[-1] if messages else {}
    if last.get("type") == "tool":
        results = sum(1 for m in messages if m.get("type") == "tool")
        return f"llm: answer after {results} tool result(s)"
    content = last.get("content", "")
    return f'llm: "{_short(content if isinstance(content, str) else "")}"'


def summarize_tool(task: dict[str, Any]) -> str:
    call = task["call"]
    values = [v for v in call.get("args", {}).values() if isinstance(v, str | int) and v != ""]
    detail = f' "{_short(str(values[0]))}"' if values else ""
    return f"tool {call['name']}:{detail}"


async def route_after_llm(state: AgentState) -> list[Send] | str:
    # Async on purpose: a sync router would run in an executor, which workflows forbid.
    last = state["messages"][-1]
    calls = last.get("tool_calls") or []
    if not calls:
        return END
    return [Send("tool", {"call": call, "context": state["context"]}) for call in calls]


async def llm_step(state: AgentState) -> dict[str, Any]:
    return await workflow.execute_local_activity(
        llm_node,
        dict(state),
        start_to_close_timeout=timedelta(seconds=60),
        retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
        summary=summarize_llm(dict(state)),
    )


async def tool_step(task: dict[str, Any]) -> dict[str, Any]:
    return await workflow.execute_local_activity(
        tool_node,
        task,
        start_to_close_timeout=timedelta(seconds=15),
        retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1)),
        summary=summarize_tool(task),
    )


def build_agent_graph() -> StateGraph[AgentState]:
    graph = StateGraph(AgentState)
    graph.add_node("llm", llm_step, metadata={"execute_in": "workflow"})
    graph.add_node("tool", tool_step, metadata={"execute_in": "workflow"})  # type: ignore[arg-type]
    graph.add_edge(START, "llm")
    graph.add_conditional_edges("llm", route_after_llm, ["tool", END])
    graph.add_edge("tool", "llm")
    return graph
