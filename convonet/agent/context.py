"""Per-turn facts the workflow hands to the agent's activities."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel


class TurnContext(BaseModel):
    """Who is calling and when. Built in the workflow from its own state, never from the LLM."""

    conversation_id: str
    workflow_id: str
    turn: int
    user_id: int
    user_name: str
    timezone: str = "UTC"
    # UTC instant set by the workflow; activities call `localized()` before use.
    now_iso: str
    # Set when the reply is spoken: the LLM step streams its text to this turn's Redis stream.
    speak_key: str | None = None
    # After a failed transfer: where "try again" and "take a message" are meant for.
    last_failed_department: str = ""

    def localized(self) -> TurnContext:
        """The same context with `now_iso` in the caller's time zone (unknown zone: UTC)."""
        try:
            zone: tzinfo = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        now = datetime.fromisoformat(self.now_iso).astimezone(zone)
        return self.model_copy(update={"now_iso": now.isoformat()})
