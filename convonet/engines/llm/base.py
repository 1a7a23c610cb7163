"""The LLM interface every engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence

from langchain_core.messages import AIMessage, BaseMessage

from convonet.agent.context import TurnContext
from convonet.agent.tool_specs import ToolSpec

# Receives each piece of reply text as soon as the engine has produced it.
TextSink = Callable[[str], Awaitable[None]]


class LlmError(Exception):
    """The engine could not produce an answer (after its own retries)."""


class ChatModel(ABC):
    """Turns the conversation so far into the assistant's next message.

    The reply is an `AIMessage`: spoken text, tool calls, or both. Tool-call ids must be
    unique within the conversation; they become part of each tool's idempotency key.

    With `on_text`, the engine hands over the reply's text while producing it (so speech
    can start before the reply is complete); all of it, in order, exactly once.
    """

    name: str

    @abstractmethod
    async def respond(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[ToolSpec],
        context: TurnContext,
        on_text: TextSink | None = None,
    ) -> AIMessage: ...
