"""Chooses the agent leg from settings: Twilio + PBX when configured, else built-in."""

from __future__ import annotations

import redis.asyncio as aioredis

from convonet.engines.agent_leg.base import AgentLeg
from convonet.settings import Settings


def agent_leg(settings: Settings, redis: aioredis.Redis) -> AgentLeg:
    if settings.twilio_enabled:
        from convonet.engines.agent_leg.twilio import TwilioAgentLeg

        return TwilioAgentLeg(settings, redis)
    from convonet.engines.agent_leg.builtin import BuiltinAgentLeg

    return BuiltinAgentLeg(redis)
