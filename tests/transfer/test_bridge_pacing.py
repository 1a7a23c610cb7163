"""The bridge never builds up delay: a slow side loses its oldest frames, and Twilio's
playback backlog is cleared once more than a little is waiting to play."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis.asyncio as aioredis

from api.bridge.link import MAX_BACKLOG, BridgeLink
from api.twilio.media import MAX_UNPLAYED_MARKS, TwilioMediaTransport
from convonet.speech import streams


async def test_a_slow_receiver_drops_old_frames_instead_of_queueing(redis_url: str) -> None:
    client: aioredis.Redis = streams.binary_client(redis_url)
    delivered: list[bytes] = []

    async def slow(pcm: bytes, sent_at: float) -> None:
        delivered.append(pcm)
        await asyncio.sleep(0.05)  # a receiver 2.5 times slower than real time

    caller = BridgeLink(client, "t-pacing", "caller", slow)
    agent = BridgeLink(client, "t-pacing", "agent", slow)
    await caller.start()
    await agent.start()
    try:
        for index in range(100):
            agent.send(index.to_bytes(2, "little") * 320)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        # The newest frame arrived; far fewer than 100 were played, and the ones dropped
        # were the oldest waiting.
        assert delivered[-1] == (99).to_bytes(2, "little") * 320
        assert caller.dropped > 0
        assert len(delivered) <= 100 - caller.dropped
        order = [int.from_bytes(frame[:2], "little") for frame in delivered]
        assert order == sorted(order)
        assert MAX_BACKLOG <= 5
    finally:
        await caller.aclose()
        await agent.aclose()
        await client.aclose()


class _Socket:
    """Collects what the transport sends to Twilio."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))


async def test_twilio_backlog_is_cleared_when_marks_stop_coming_back() -> None:
    socket = _Socket()
    transport = TwilioMediaTransport(socket, "MZ123")  # type: ignore[arg-type]
    frame = b"\x10\x00" * 320
    for _ in range(MAX_UNPLAYED_MARKS + 5):
        await transport.outbound(frame)
    assert transport.clears == 1
    assert [m for m in socket.sent if m["event"] == "clear"] == [
        {"event": "clear", "streamSid": "MZ123"}
    ]
    media = [m for m in socket.sent if m["event"] == "media"]
    assert media and all(m["streamSid"] == "MZ123" for m in media)

    # Marks played back in time: nothing more is cleared.
    for _ in range(30):
        await transport.outbound(frame)
        transport.played()
    assert transport.clears == 1
