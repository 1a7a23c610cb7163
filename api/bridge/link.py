"""One side of a transfer's audio bridge: 16 kHz PCM frames between the caller and the
agent over Redis pub/sub, so the two sides may live in different edge processes.

Delay never builds up: frames are relayed as they arrive, and a side that falls behind
drops its oldest frames rather than queueing them."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from convonet import metrics, redis_keys

log = logging.getLogger("convonet.api.bridge")

Side = Literal["caller", "agent"]
OnAudio = Callable[[bytes, float], Awaitable[None]]
# Each frame carries the wall-clock time it entered the bridge, to measure the bridge's delay.
HEADER = struct.Struct("<d")
# At most this many 20 ms frames wait for a slow receiver; older ones are dropped.
MAX_BACKLOG = 5


def channel(transfer_id: str, to: Side) -> str:
    return f"convonet:bridge:{transfer_id}:to-{to}"


class BridgeLink:
    def __init__(
        self, redis: aioredis.Redis, transfer_id: str, side: Side, on_audio: OnAudio
    ) -> None:
        self.redis = redis
        self.transfer_id = transfer_id
        self.side: Side = side
        self.other: Side = "agent" if side == "caller" else "caller"
        self.on_audio = on_audio
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_BACKLOG)
        self.inbox: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue(maxsize=MAX_BACKLOG)
        self.dropped = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._receive()),
            asyncio.create_task(self._deliver()),
            asyncio.create_task(self._send()),
        ]
        await asyncio.wait_for(self.subscribed.wait(), timeout=5)

    def send(self, pcm: bytes) -> None:
        """Queues one frame for the other side without waiting (called from socket handlers)."""
        _put_dropping_oldest(self.outbox, HEADER.pack(time.time()) + pcm, self)

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def _send(self) -> None:
        target = channel(self.transfer_id, self.other)
        while True:
            frame = await self.outbox.get()
            try:
                await self.redis.publish(target, frame)
            except RedisError as error:
                log.warning("bridge %s lost a frame: %s", self.transfer_id, error)

    async def _receive(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(channel(self.transfer_id, self.side))
            self.subscribed.set()
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                data = message["data"]
                if not isinstance(data, bytes) or len(data) <= HEADER.size:
                    continue
                (sent_at,) = HEADER.unpack_from(data)
                _put_dropping_oldest(self.inbox, (data[HEADER.size :], sent_at), self)
        finally:
            await redis_keys.close_pubsub(pubsub)

    async def _deliver(self) -> None:
        direction: metrics.Direction = "to_caller" if self.side == "caller" else "to_agent"
        while True:
            pcm, sent_at = await self.inbox.get()
            try:
                await self.on_audio(pcm, sent_at)
            except Exception:  # a closed socket ends the call elsewhere; keep draining
                log.exception("bridge %s could not deliver a frame", self.transfer_id)
            else:
                metrics.observe_bridge_delay(direction, time.time() - sent_at)


def _put_dropping_oldest(queue: asyncio.Queue, item: object, link: BridgeLink) -> None:  # type: ignore[type-arg]
    if queue.full():
        queue.get_nowait()
        link.dropped += 1
    queue.put_nowait(item)
