"""Delivers live events from Redis pub/sub to the sockets of this edge process.

One pattern subscription per process; handlers register per channel. Redis going away is
survived by resubscribing, since a missed display event is repaired by the next status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from convonet import events, redis_keys

log = logging.getLogger("convonet.api.events")

Handler = Callable[[events.Event], Awaitable[None]]
RETRY_S = 1.0


class EventHub:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.handlers: dict[str, set[Handler]] = {}
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def add(self, channel: str, handler: Handler) -> Callable[[], None]:
        """Calls `handler` for every event on `channel`; returns the function that stops it."""
        self.handlers.setdefault(channel, set()).add(handler)
        self.start()

        def remove() -> None:
            registered = self.handlers.get(channel)
            if registered is not None:
                registered.discard(handler)
                if not registered:
                    del self.handlers[channel]

        return remove

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._listen())

    async def wait_ready(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(f"{events.PREFIX}*")
                self.ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        await self._deliver(str(message["channel"]), message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                self.ready.clear()
                log.warning("event subscription lost (%s); resubscribing", error)
                await asyncio.sleep(RETRY_S)
            finally:
                await redis_keys.close_pubsub(pubsub)

    async def _deliver(self, channel: str, data: str | bytes) -> None:
        handlers = self.handlers.get(channel)
        if not handlers:
            return
        try:
            event = events.parse(data)
        except ValueError:
            log.warning("ignored a malformed event on %s", channel)
            return
        for handler in list(handlers):
            try:
                await handler(event)
            except Exception:  # one broken socket must not stop the others' events
                log.exception("event handler failed on %s", channel)
