"""Built-in mode: the agent's dashboard rings over our own socket, no PBX needed.

The worker publishes the ring to the agent's event channel; whichever edge process holds
the agent's dashboard connection shows it. Answer and hang-up come back as workflow
signals from that edge process."""

from __future__ import annotations

import secrets
from datetime import datetime

import redis.asyncio as aioredis

from convonet import events
from convonet.engines.agent_leg.base import AgentLeg, DialRequest


class BuiltinAgentLeg(AgentLeg):
    name = "builtin"

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def dial(self, request: DialRequest) -> str:
        await events.publish(
            self.redis,
            events.agent_channel(request.agent_id),
            events.RingEvent(call=request.screen_pop),
        )
        return f"ring-{secrets.token_hex(8)}"

    async def find_dialled(self, request: DialRequest, since: datetime) -> str | None:
        # A ring is a message, not a call: nothing outlives a dead worker but the message.
        # Ringing again is safe, since the edge shows each dashboard one ring per transfer.
        return None

    async def hang_up(self, transfer_id: str, leg_id: str, agent_id: int) -> None:
        await events.publish(
            self.redis,
            events.agent_channel(agent_id),
            events.CallStateEvent(transfer_id=transfer_id, state="ended", reason="hung-up"),
        )
