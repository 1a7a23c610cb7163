"""Claude through langchain-anthropic: the production LLM engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anthropic
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from pydantic import SecretStr

from convonet.agent.context import TurnContext
from convonet.agent.prompt import system_prompt
from convonet.agent.tool_specs import ToolSpec
from convonet.engines.llm.base import ChatModel, LlmError
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
    ) -> AIMessage:
        llm = (
            self._llm.bind_tools([_anthropic_tool(spec) for spec in tools]) if tools else self._llm
        )
        prompt = [SystemMessage(system_prompt(context)), *messages]
        try:
            reply = await llm.ainvoke(prompt)
        except anthropic.APIError as error:
            raise LlmError(_describe(error)) from error
        return reply
