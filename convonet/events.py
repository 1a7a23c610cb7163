"""Live events between processes over Redis pub/sub: what the worker tells the edge (a
transfer's progress, an agent's ring) and what one edge process tells another.

Events are for display only; anything that must not be lost goes through the workflow.
"""

from __future__ import annotations

from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from convonet.screen_pop import ScreenPop

PREFIX = "convonet:events:"


def conversation_channel(conversation_id: str) -> str:
    return f"{PREFIX}conversation:{conversation_id}"


def agent_channel(agent_id: int) -> str:
    return f"{PREFIX}agent:{agent_id}"


class TransferEvent(BaseModel):
    """To the caller: where their transfer is."""

    type: Literal["transfer"] = "transfer"
    transfer_id: str
    state: str
    department: str
    agent_name: str = ""
    reason: str = ""
    on_hold: bool = False


class AssistantSays(BaseModel):
    """To the caller: the assistant speaks without being asked (after a transfer)."""

    type: Literal["assistant"] = "assistant"
    text: str
    turn: int
    turn_key: str


class RingEvent(BaseModel):
    """To an agent's dashboard: a call for them, with the warm hand-off."""

    type: Literal["ring"] = "ring"
    call: ScreenPop


class CallStateEvent(BaseModel):
    """To an agent's dashboard: the call they were offered or are on moved on."""

    type: Literal["call_state"] = "call_state"
    transfer_id: str
    state: str
    reason: str = ""


class AgentStateEvent(BaseModel):
    type: Literal["agent_state"] = "agent_state"
    state: str


Event = TransferEvent | AssistantSays | RingEvent | CallStateEvent | AgentStateEvent


class Envelope(BaseModel):
    event: Event = Field(discriminator="type")


async def publish(redis: aioredis.Redis, channel: str, event: Event) -> None:
    await redis.publish(channel, event.model_dump_json())


def parse(data: str | bytes) -> Event:
    raw = data.decode() if isinstance(data, bytes) else data
    return Envelope.model_validate_json(f'{{"event": {raw}}}').event
