"""Process-wide dependencies of the activities: settings, engines and connections.

The worker configures this once at start-up, so engines are warm and connections reused
rather than built per turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from convonet import redis_keys
from convonet.engines.calendar.base import CalendarBackend
from convonet.engines.llm.base import ChatModel
from convonet.settings import Settings


@dataclass
class ActivityRuntime:
    settings: Settings
    redis: aioredis.Redis
    chat_model: ChatModel
    calendar: CalendarBackend


_runtime: ActivityRuntime | None = None


def configure(settings: Settings) -> ActivityRuntime:
    # Imported here so a missing optional engine never breaks importing the activities.
    from convonet.engines.calendar.factory import calendar_backend
    from convonet.engines.llm.factory import chat_model

    global _runtime
    _runtime = ActivityRuntime(
        settings=settings,
        redis=redis_keys.client(settings.effective_redis_url),
        chat_model=chat_model(settings),
        calendar=calendar_backend(settings),
    )
    return _runtime


def current() -> ActivityRuntime:
    if _runtime is None:
        raise RuntimeError("activity runtime not configured; the worker calls configure() first")
    return _runtime
