"""Per-turn facts the workflow hands to the agent's activities."""

from __future__ import annotations

from pydantic import BaseModel


class TurnContext(BaseModel):
    """Who is calling and when. Built in the workflow from its own state, never from the LLM."""

    conversation_id: str
    workflow_id: str
    turn: int
    user_id: int
    user_name: str
    timezone: str = "UTC"
    now_iso: str
