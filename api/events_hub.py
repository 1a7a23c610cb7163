"""Delivers live events from Redis pub/sub to the sockets of this edge process.

One pattern subscription per process; handlers register per channel. Each handler gets its
events in order from a queue of its own, so one socket that is slow with an event (closing
its bridge, say) delays only its own, never another socket's. Redis going away is survived
by resubscribing, since a missed display event is repaired by the next status."""

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
# Events waiting for one handler; past this the oldest is dropped (a stuck socket).
BACKLOG = 256


class _Subscriber:
    """One handler's queue of events and the task that hands them over, in order."""

    def __init__(self, channel: str, handler: Handler) -> None:
        self.channel = channel
        self.handler = handler
        self.queue: asyncio.Queue[events.Event] = asyncio.Queue(BACKLOG)
        self.stopped = False
        self.task = asyncio.create_task(self._run())

    def stop(self) -> None:
        self.stopped = True
        # A handler that unsubscribes itself (its socket disconnecting) finishes its event.
        if asyncio.current_task() is not self.task:
            self.task.cancel()

    def put(self, event: events.Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            log.warning("a handler on %s fell %d events behind: dropped one", self.channel, BACKLOG)
        self.queue.put_nowait(event)

    async def _run(self) -> None:
        while not self.stopped:
            event = await self.queue.get()
            try:
                await self.handler(event)
            except Exception:  # one broken socket must not stop its later events
                log.exception("event handler failed on %s", self.channel)


class EventHub:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.subscribers: dict[str, list[_Subscriber]] = {}
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def add(self, channel: str, handler: Handler) -> Callable[[], None]:
        """Calls `handler` for every event on `channel`; returns the function that stops it."""
        subscriber = _Subscriber(channel, handler)
        self.subscribers.setdefault(channel, []).append(subscriber)
        self.start()

        def remove() -> None:
            subscriber.stop()
            registered = self.subscribers.get(channel)
            if registered is not None and subscriber in registered:
                registered.remove(subscriber)
                if not registered:
                    del self.subscribers[channel]

        return remove

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._listen())

    async def wait_ready(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def aclose(self) -> None:
        subscribers = [s for registered in self.subscribers.values() for s in registered]
        for subscriber in subscribers:
            subscriber.stop()
        tasks = [s.task for s in subscribers]
        if self.task is not None:
            self.task.cancel()
            tasks.append(self.task)
        await asyncio.gather(*tasks, return_exceptions=True)

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
        subscribers = self.subscribers.get(channel)
        if not subscribers:
            return
        try:
            event = events.parse(data)
        except ValueError:
            log.warning("ignored a malformed event on %s", channel)
            return
        for subscriber in subscribers:
            subscriber.put(event)
