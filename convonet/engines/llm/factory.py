"""Picks the LLM engine from settings: Claude when a key is set, else the intent model."""

from __future__ import annotations

from convonet.engines.llm.base import ChatModel
from convonet.settings import Settings


def chat_model(settings: Settings) -> ChatModel:
    # Engines are imported on demand so only the chosen one's dependencies load.
    if settings.anthropic_api_key:
        from convonet.engines.llm.claude import ClaudeModel

        return ClaudeModel(settings)
    from convonet.engines.llm.intent_model import IntentModel

    return IntentModel()
