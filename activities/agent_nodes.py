"""The agent graph's I/O: one LLM step, one tool call. Each is a (local) activity that the
graph's workflow-side nodes call, so retries and idempotency are Temporal's."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage, convert_to_messages
from sqlalchemy.exc import IntegrityError
from temporalio import activity

from activities import runtime
from convonet.agent.context import TurnContext
from convonet.agent.messages import to_dict
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import TOOL_SPECS
from convonet.db.models import ToolExecution
from convonet.db.session import session_scope
from convonet.engines.llm.base import LlmError
from convonet.services.dispatch import execute_tool
from convonet.speech import streams, timings


@activity.defn(name="agent.llm")
async def llm_node(state: dict[str, Any]) -> dict[str, Any]:
    rt = runtime.current()
    context = TurnContext.model_validate(state["context"]).localized()
    messages = convert_to_messages(state["messages"])
    try:
        reply = await rt.chat_model.respond(messages, TOOL_SPECS, context)
    except LlmError as error:
        # Retried by Temporal per the node's retry policy; the message carries no secrets.
        raise RuntimeError(f"LLM {rt.chat_model.name} failed: {error}") from None
    if context.speak_key:
        await _stream_reply_text(context, reply)
    return {"messages": [to_dict(reply)]}


async def _stream_reply_text(context: TurnContext, reply: AIMessage) -> None:
    """Hands the reply text to the speaking activity through the turn's text stream."""
    rt = runtime.current()
    assert context.speak_key is not None
    ttl = rt.settings.audio_stream_ttl_s
    text = reply.text.strip() if isinstance(reply.text, str) else ""
    writer = streams.StreamWriter(
        rt.streams, streams.key(context.conversation_id, context.speak_key, "text"), ttl
    )
    if text:
        await streams.mark(
            rt.streams, context.conversation_id, context.speak_key, timings.FIRST_TOKEN, ttl
        )
        await writer.add({"d": text + " "})
    if not reply.tool_calls:
        await writer.add({"end": 1})


def idempotency_key(context: TurnContext, tool_call_id: str) -> str:
    return f"{context.workflow_id}:{context.turn}:{tool_call_id}"


@activity.defn(name="agent.tool")
async def tool_node(task: dict[str, Any]) -> dict[str, Any]:
    """Runs one tool call as the authenticated caller, exactly once per idempotency key."""
    rt = runtime.current()
    context = TurnContext.model_validate(task["context"]).localized()
    call = task["call"]
    key = idempotency_key(context, call["id"])
    try:
        result = await _execute_once(context, call, key)
    except IntegrityError:
        # A concurrent attempt committed first; its stored result is the answer.
        result = await _execute_once(context, call, key)
    delay = rt.settings.fault_tool_delay_after_commit_s
    if delay:
        await asyncio.sleep(delay)
    message = ToolMessage(
        content=result.model_dump_json(), tool_call_id=call["id"], name=call["name"]
    )
    return {"messages": [to_dict(message)]}


async def _execute_once(context: TurnContext, call: dict[str, Any], key: str) -> ToolResult:
    rt = runtime.current()
    async with session_scope(rt.settings.effective_database_url) as session:
        done = await session.get(ToolExecution, key)
        if done is not None:
            activity.logger.info("tool %s already executed for %s", call["name"], key)
            return ToolResult.model_validate(done.result)
        result = await execute_tool(
            session, context, call["name"], dict(call.get("args") or {}), rt.calendar, key
        )
        session.add(
            ToolExecution(
                key=key, user_id=context.user_id, tool=call["name"], result=result.model_dump()
            )
        )
    return result
