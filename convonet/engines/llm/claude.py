"""Claude through langchain-anthropic: the production LLM engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import anthropic
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    SystemMessage,
    message_chunk_to_message,
)
from pydantic import SecretStr

from convonet.agent.context import TurnContext
from convonet.agent.prompt import system_prompt
from convonet.agent.tool_specs import ToolSpec
from convonet.engines.llm.base import ChatModel, LlmError, TextSink
from convonet.settings import Settings

# Answers are spoken, so a short cap keeps latency and cost down.
MAX_TOKENS = 400
MAX_RETRIES = 3
TIMEOUT_S = 30.0


def _anthropic_tool(spec: ToolSpec) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "input_schema": spec.json_schema()}


def _describe(error: anthropic.APIError) -> str:
    # Only the error class and status: SDK messages may echo request details.
    if isinstance(error, anthropic.APIStatusError):
        return f"Claude request failed: {type(error).__name__} (HTTP {error.status_code})"
    return f"Claude request failed: {type(error).__name__}"


class ClaudeModel(ChatModel):
    name = "claude"

    def __init__(self, settings: Settings) -> None:
        if not settings.anthropic_api_key:
            raise ValueError("ClaudeModel needs ANTHROPIC_API_KEY")
        self._llm = ChatAnthropic(
            model=settings.anthropic_model,
            api_key=SecretStr(settings.anthropic_api_key),
            base_url=settings.anthropic_base_url,
            max_tokens=MAX_TOKENS,
            max_retries=MAX_RETRIES,
            timeout=TIMEOUT_S,
        )

    async def respond(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[ToolSpec],
        context: TurnContext,
        on_text: TextSink | None = None,
    ) -> AIMessage:
        llm = (
            self._llm.bind_tools([_anthropic_tool(spec) for spec in tools]) if tools else self._llm
        )
        prompt = [SystemMessage(system_prompt(context)), *messages]
        try:
            if on_text is None:
                return await llm.ainvoke(prompt)
            return await _streamed(llm.astream(prompt), on_text)
        except anthropic.APIError as error:
            raise LlmError(_describe(error)) from error


async def _streamed(chunks: AsyncIterator[BaseMessage], on_text: TextSink) -> AIMessage:
    """Hands text on as it streams in; returns the whole message, tool calls included."""
    whole: AIMessageChunk | None = None
    async for chunk in chunks:
        assert isinstance(chunk, AIMessageChunk)
        whole = chunk if whole is None else whole + chunk
        text = chunk.text
        if text:
            await on_text(text)
    if whole is None:
        raise LlmError("Claude returned an empty stream")
    message = message_chunk_to_message(whole)
    assert isinstance(message, AIMessage)
    return message
