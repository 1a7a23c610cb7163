"""The agent graph's I/O: one LLM step, one tool call. Each is a (local) activity that the
graph's workflow-side nodes call, so retries and idempotency are Temporal's."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import ToolMessage, convert_to_messages
from sqlalchemy.exc import IntegrityError
from temporalio import activity

from activities import faults, runtime
from convonet import metrics
from convonet.agent.context import TurnContext
from convonet.agent.messages import text_of, to_dict
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import TOOL_SPECS
from convonet.db.models import ToolExecution
from convonet.db.session import session_scope
from convonet.engines.llm.base import LlmError
from convonet.services.dispatch import execute_tool
from convonet.speech import streams, timings
from convonet.speech.sentences import SentenceBuffer


@activity.defn(name="agent.llm")
async def llm_node(state: dict[str, Any]) -> dict[str, Any]:
    rt = runtime.current()
    await faults.hold_open("the LLM step", rt.settings.fault_llm_delay_s)
    context = TurnContext.model_validate(state["context"]).localized()
    messages = convert_to_messages(state["messages"])
    sink = _ReplyTextStream(context) if context.speak_key else None
    try:
        reply = await rt.chat_model.respond(
            messages, TOOL_SPECS, context, on_text=sink.write if sink else None
        )
    except LlmError as error:
        # Retried by Temporal per the node's retry policy; the message carries no secrets.
        raise RuntimeError(f"LLM {rt.chat_model.name} failed: {error}") from None
    produced = to_dict(reply)
    if sink is not None:
        await sink.finish(answered=not reply.tool_calls, text=text_of(produced).strip())
    return {"messages": [produced]}


class _ReplyTextStream:
    """Hands reply text to the speaking activity through the turn's text stream, as the
    engine produces it, so the first sentence is spoken before the reply is complete.

    It also times the engine for the turn's figures: from the call to the text that
    completes the first sentence (what the speaker waits for), or to the step's end if none
    does, less the time spent here writing to Redis.
    """

    def __init__(self, context: TurnContext) -> None:
        rt = runtime.current()
        assert context.speak_key is not None
        self.rt = rt
        self.context = context
        self.turn_key = context.speak_key
        self.writer = streams.StreamWriter(
            rt.streams,
            streams.key(context.conversation_id, context.speak_key, "text"),
            rt.settings.audio_stream_ttl_s,
        )
        self.started = False
        self.called_at = time.time()
        self.engine_field = timings.step_field(
            timings.LLM_ENGINE, streams.now_ms(), activity.info().activity_id
        )
        self.engine_timed = False
        self.writing_s = 0.0
        self.sentences = SentenceBuffer()

    def _engine_ms(self, until: float) -> int:
        return max(0, round((until - self.called_at - self.writing_s) * 1000))

    async def write(self, delta: str) -> None:
        entered = time.time()
        figures: dict[str, int] = {}
        if not self.started:
            self.started = True
            figures[timings.FIRST_TOKEN] = streams.now_ms()
        if not self.engine_timed and self.sentences.push(delta):
            self.engine_timed = True
            figures[self.engine_field] = self._engine_ms(entered)
        # One round trip; the figures first, so they are there when its audio reaches the edge.
        await self._write(figures, [{"d": delta}])
        self.writing_s += time.time() - entered

    async def finish(self, answered: bool, text: str) -> None:
        if answered and text and not self.started:
            await self.write(text)  # an engine that answered without handing text over
        figures: dict[str, int] = {}
        if not self.engine_timed:
            self.engine_timed = True
            figures[self.engine_field] = self._engine_ms(time.time())
        # A step that calls tools may speak a preface; the stream stays open for the answer
        # after the tools. A step without tool calls is the answer's end, unless the whole
        # turn said nothing: the workflow then apologizes, in the same stream.
        entries: list[dict[str, bytes | str | int]] = []
        if self.started:
            entries.append({"d": " "})
        if answered and (self.started or await self.rt.streams.xlen(self.writer.name)):
            entries.append({"end": 1})
        await self._write(figures, entries)

    async def _write(
        self, figures: dict[str, int], entries: list[dict[str, bytes | str | int]]
    ) -> None:
        """Records figures (the first-token mark keeps its first value, so a retry keeps the
        original), then appends the entries, in one round trip."""
        if not figures and not entries:
            return
        name = streams.key(self.context.conversation_id, self.turn_key, "timing")
        async with self.rt.streams.pipeline(transaction=False) as pipe:
            for field, value in figures.items():
                if field == timings.FIRST_TOKEN:
                    pipe.hsetnx(name, field, value)
                else:
                    pipe.hset(name, field, value)
            if figures:
                pipe.expire(name, self.rt.settings.audio_stream_ttl_s)
            for fields in entries:
                self.writer.queue(pipe, fields)
            await pipe.execute()


def idempotency_key(context: TurnContext, tool_call_id: str) -> str:
    return f"{context.workflow_id}:{context.turn}:{tool_call_id}"


@activity.defn(name="agent.tool")
async def tool_node(task: dict[str, Any]) -> dict[str, Any]:
    """Runs one tool call as the authenticated caller, exactly once per idempotency key."""
    rt = runtime.current()
    context = TurnContext.model_validate(task["context"]).localized()
    call = task["call"]
    key = idempotency_key(context, call["id"])
    started_ms, started = streams.now_ms(), time.perf_counter()
    try:
        result = await _execute_once(context, call, key)
    except IntegrityError:
        # A concurrent attempt committed first; its stored result is the answer.
        result = await _execute_once(context, call, key)
    took = time.perf_counter() - started
    metrics.observe_tool(str(call["name"]), took)
    if context.speak_key:
        # The tool's share of a spoken turn's critical path (if it ran before the first audio).
        field = timings.step_field(timings.TOOL_ENGINE, started_ms, activity.info().activity_id)
        await streams.put_marks(
            rt.streams,
            context.conversation_id,
            context.speak_key,
            {field: round(took * 1000)},
            rt.settings.audio_stream_ttl_s,
        )
    await faults.hold_open(
        f"tool {call['name']} after its commit", rt.settings.fault_tool_delay_after_commit_s
    )
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
