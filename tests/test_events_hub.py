"""The edge's event hub over real Redis: each handler gets its events in order, and one
that is slow with an event holds up only its own, not another socket's."""

from __future__ import annotations

import asyncio

from api.events_hub import EventHub
from convonet import events, redis_keys

WAIT_S = 5.0


def said(n: int) -> events.AssistantSays:
    return events.AssistantSays(text=f"line {n}", turn=n, turn_key=f"t{n}")


async def test_a_slow_handler_holds_up_only_its_own_events(redis_url: str) -> None:
    redis = redis_keys.client(redis_url)
    hub = EventHub(redis)
    release = asyncio.Event()
    slow_got: list[int] = []
    quick_got: list[int] = []
    quick_has_three = asyncio.Event()

    async def slow(event: events.Event) -> None:
        assert isinstance(event, events.AssistantSays)
        await release.wait()  # stuck, as a socket closing a stalled bridge was
        slow_got.append(event.turn)

    async def quick(event: events.Event) -> None:
        assert isinstance(event, events.AssistantSays)
        quick_got.append(event.turn)
        if len(quick_got) == 3:
            quick_has_three.set()

    stop_slow = hub.add(events.conversation_channel("slow"), slow)
    hub.add(events.conversation_channel("quick"), quick)
    try:
        await hub.wait_ready()
        for n in (1, 2, 3):
            await events.publish(redis, events.conversation_channel("slow"), said(n))
            await events.publish(redis, events.conversation_channel("quick"), said(n))
        await asyncio.wait_for(quick_has_three.wait(), WAIT_S)
        assert quick_got == [1, 2, 3] and slow_got == []

        release.set()
        async with asyncio.timeout(WAIT_S):
            while len(slow_got) < 3:
                await asyncio.sleep(0.01)
        assert slow_got == [1, 2, 3]  # in order, once the handler was free again

        stop_slow()
        await events.publish(redis, events.conversation_channel("slow"), said(4))
        await events.publish(redis, events.conversation_channel("quick"), said(4))
        async with asyncio.timeout(WAIT_S):
            while len(quick_got) < 4:
                await asyncio.sleep(0.01)
        assert slow_got == [1, 2, 3]  # stopped: nothing more
    finally:
        await hub.aclose()
        await redis.aclose()
