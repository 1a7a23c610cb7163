"""The LLM interface every engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage

from convonet.agent.context import TurnContext
from convonet.agent.tool_specs import ToolSpec


class LlmError(Exception):
    """The engine could not produce an answer (after its own retries)."""


class ChatModel(ABC):
    """Turns the conversation so far into the assistant's next message.

    The reply is an `AIMessage`: spoken text, tool calls, or both. Tool-call ids must be
    unique within the conversation; they become part of each tool's idempotency key.
    """

    name: str

    @abstractmethod
    async def respond(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[ToolSpec],
        context: TurnContext,
    ) -> AIMessage: ...
