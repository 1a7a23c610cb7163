"""Closing a Redis subscription never hangs the caller: redis-py's PubSub.aclose() can stall
on a connection whose reader was just cancelled (redis/redis-py#3941)."""

from __future__ import annotations

import asyncio
import time

import pytest

from convonet import redis_keys


async def test_a_real_subscription_closes_after_its_reader_is_cancelled(redis_url: str) -> None:
    client = redis_keys.client(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe("convonet:test:close")

    async def read() -> None:
        async for _ in pubsub.listen():
            pass

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.1)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await redis_keys.close_pubsub(pubsub)
    assert pubsub.connection is None
    await client.aclose()


class StallingSubscription:
    """A subscription whose close never returns, as the stalled redis-py one does."""

    async def aclose(self) -> None:
        await asyncio.sleep(3600)


async def test_a_stalled_close_is_given_up_after_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_keys, "PUBSUB_CLOSE_S", 0.2)
    started = time.monotonic()
    await redis_keys.close_pubsub(StallingSubscription())  # type: ignore[arg-type]
    assert time.monotonic() - started < 2.0
