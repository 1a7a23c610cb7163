"""Connections the edge shares across requests, opened lazily so the API starts (and
reports itself unhealthy) even when Temporal is not up yet."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from temporalio.client import Client

from convonet import redis_keys
from convonet.settings import Settings
from convonet.speech import streams
from convonet.temporal_client import connect


class EdgeServices:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis: aioredis.Redis = redis_keys.client(settings.effective_redis_url)
        # Audio streams carry bytes, so they get a client that does not decode.
        self.streams: aioredis.Redis = streams.binary_client(settings.effective_redis_url)
        self._temporal: Client | None = None
        self._lock = asyncio.Lock()

    async def temporal(self) -> Client:
        async with self._lock:
            if self._temporal is None:
                self._temporal = await asyncio.wait_for(connect(self.settings), timeout=5)
            return self._temporal

    async def close(self) -> None:
        await self.redis.aclose()
        await self.streams.aclose()
