"""Relays one turn's streams from Redis to the caller's socket as they are written:
interim and final transcripts, reply text, reply audio frames and the turn's timings."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.protocol import TimingsOut
from convonet import metrics
from convonet.speech import streams
from convonet.speech import timings as marks
from convonet.speech.audio import SAMPLE_RATE

log = logging.getLogger("convonet.api.voice")

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
# A turn whose streams stay silent this long is abandoned (the worker is retrying or gone).
IDLE_TIMEOUT_S = 90.0
BLOCK_MS = 1000
# Redis away (a restart, a failover): read again this soon, from the same offsets.
REDIS_RETRY_S = 0.5


async def relay_turn(
    redis: aioredis.Redis, emit: Emit, conversation_id: str, turn_key: str
) -> None:
    names = {kind: streams.key(conversation_id, turn_key, kind) for kind in ("stt", "text", "out")}
    kinds = {name: kind for kind, name in names.items()}
    offsets = {name: "0-0" for name in names.values()}
    seq = 0
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < IDLE_TIMEOUT_S:
        try:
            items = await streams.read_many(redis, offsets, BLOCK_MS)
        except RedisError as error:
            # The offsets stand, so nothing is skipped or sent twice once Redis is back; a
            # Redis gone for good ends the turn at the idle timeout like a silent worker.
            log.warning("turn %s: Redis unavailable (%s); retrying", turn_key, error)
            await asyncio.sleep(REDIS_RETRY_S)
            continue
        if items:
            idle_since = time.monotonic()
        for name, (entry_id, fields) in items:
            offsets[name] = entry_id
            kind = kinds[name]
            if kind == "stt":
                await emit(
                    "transcript",
                    {
                        "turn_key": turn_key,
                        "text": _text(fields, b"text"),
                        "final": _text(fields, b"type") == "final",
                    },
                )
            elif kind == "text" and b"d" in fields:
                await emit("reply_text", {"turn_key": turn_key, "text": _text(fields, b"d")})
            elif kind == "out" and b"pcm" in fields:
                if seq == 0:
                    await _first_audio(redis, emit, conversation_id, turn_key)
                await emit(
                    "audio_out",
                    {"turn_key": turn_key, "seq": seq, "rate": SAMPLE_RATE, "pcm": fields[b"pcm"]},
                )
                seq += 1
            elif kind == "out" and b"end" in fields:
                interrupted = b"interrupted" in fields
                await emit("audio_done", {"turn_key": turn_key, "interrupted": interrupted})
                await emit("stage", {"turn_key": turn_key, "stage": "idle"})
                return
    log.warning("turn %s of %s produced no audio in time", turn_key, conversation_id)
    await emit("audio_done", {"turn_key": turn_key, "interrupted": True})


async def _first_audio(
    redis: aioredis.Redis, emit: Emit, conversation_id: str, turn_key: str
) -> None:
    sent_at = streams.now_ms()
    recorded = await streams.marks(redis, conversation_id, turn_key)
    # Voice-to-voice is measured where the audio leaves for the caller, not where it was
    # synthesized.
    figures = marks.timings_from_marks(recorded, audio_sent_at=sent_at)
    if marks.SPEECH_END in recorded or marks.TEXT_RECEIVED in recorded:
        # A caller's turn (not something the assistant says on its own after a transfer).
        metrics.observe_turn(figures)
    await emit("stage", {"turn_key": turn_key, "stage": "speaking"})
    await emit("timings", TimingsOut(turn_key=turn_key, **figures.model_dump()).model_dump())


def _text(fields: dict[bytes, bytes], name: bytes) -> str:
    return fields.get(name, b"").decode("utf-8", "replace")
