"""One interface for ringing a human agent, whatever carries the call.

A leg is dialled, then reports its progress (ringing, answered, busy, ...) as signals to
the transfer workflow; the audio always meets the caller's in the edge's bridge."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from pydantic import BaseModel

from convonet.screen_pop import ScreenPop

# SIP header (and Twilio custom header) naming the conversation, so a softphone can look
# the caller up.
CONVERSATION_HEADER = "X-Convonet-Conversation"


class DialRequest(BaseModel):
    transfer_id: str
    conversation_id: str
    agent_id: int
    extension: str
    ring_timeout_s: int
    screen_pop: ScreenPop


class AgentLeg(ABC):
    name: str

    @abstractmethod
    async def dial(self, request: DialRequest) -> str:
        """Starts ringing the agent; returns the leg's id."""

    @abstractmethod
    async def find_dialled(self, request: DialRequest, since: datetime) -> str | None:
        """The live leg an earlier dial of this request created since `since`, if any.

        A worker can die after the leg was dialled and before its id was recorded; the
        retried dial adopts that leg instead of ringing the agent a second time."""

    @abstractmethod
    async def hang_up(self, transfer_id: str, leg_id: str, agent_id: int) -> None:
        """Stops the leg, ringing or connected. Safe to call twice."""

    async def aclose(self) -> None:
        return None
