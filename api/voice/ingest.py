"""One connection's microphone: validates frames, finds utterances, streams them to Redis.

Socket.IO runs each event in its own task, so frames are queued synchronously on arrival
and processed by a single consumer: their order in Redis is their order on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from api.protocol import AudioFrameIn, MicMode
from convonet.settings import Settings
from convonet.speech import streams
from convonet.speech import timings as marks
from convonet.speech.audio import MAX_FRAME_BYTES, MIN_FRAME_BYTES, SAMPLE_RATE
from convonet.speech.vad import Endpointer, VadEvent

log = logging.getLogger("convonet.api.voice")

# Frames waiting for the consumer; past this the connection is flooding and frames are shed.
QUEUE_LIMIT = 200


@dataclass
class Refusal:
    code: str  # "bad_audio" or "rate_limited"
    message: str


class TokenBucket:
    def __init__(self, per_second: int) -> None:
        self.capacity = float(per_second)
        self.tokens = float(per_second)
        self.rate = float(per_second)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


UtteranceCallback = Callable[[str], Awaitable[None]]


class AudioIngest:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        conversation_id: str,
        on_start: UtteranceCallback,
        on_end: UtteranceCallback,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.conversation_id = conversation_id
        self.on_start = on_start
        self.on_end = on_end
        self.mode: MicMode | None = None
        self.last_seq = -1
        self.bucket = TokenBucket(settings.audio_max_frames_per_s)
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.endpointer: Endpointer | None = None
        self.turn_key: str | None = None
        self.writer: streams.StreamWriter | None = None
        # While the caller talks with a human agent, checked frames go to the bridge instead
        # of the speech detector.
        self.divert: Callable[[bytes], None] | None = None
        self.consumer = asyncio.create_task(self._consume())

    # ---- called from socket handlers (synchronous: order is preserved) -----------------

    def open(self, mode: MicMode) -> None:
        if self.mode is not None and self.mode != mode:
            self.queue.put_nowait(None)  # ends any utterance of the previous mode first
        self.mode = mode
        self.endpointer = Endpointer(
            self.settings.end_of_speech_silence_ms,
            self.settings.vad_aggressiveness,
            self.settings.max_utterance_s * 1000,
            hands_free=mode == "hands_free",
        )

    def close(self) -> None:
        """Microphone off (push-to-talk released): the utterance ends now."""
        if self.mode is not None:
            self.queue.put_nowait(None)
        self.mode = None

    def offer(self, frame: AudioFrameIn) -> Refusal | None:
        if self.mode is None:
            return Refusal("bad_audio", "Open the microphone (mic event) before sending audio.")
        if frame.rate != SAMPLE_RATE:
            return Refusal("bad_audio", "Audio must be 16 kHz.")
        size = len(frame.pcm)
        if size % 2 or not MIN_FRAME_BYTES <= size <= MAX_FRAME_BYTES:
            return Refusal("bad_audio", "An audio frame must hold 10 to 40 ms of 16-bit audio.")
        if frame.seq <= self.last_seq:
            return Refusal("bad_audio", "Audio frames arrived out of order.")
        if not self.bucket.take() or self.queue.qsize() >= QUEUE_LIMIT:
            return Refusal("rate_limited", "Too much audio: frames are being dropped.")
        self.last_seq = frame.seq
        if self.divert is not None:
            self.divert(frame.pcm)
            return None
        self.queue.put_nowait(frame.pcm)
        return None

    async def aclose(self) -> None:
        """The connection is gone: close any open utterance so nothing waits for it."""
        self.queue.put_nowait(None)
        self.queue.put_nowait(b"")
        try:
            await asyncio.wait_for(self.consumer, timeout=5)
        except TimeoutError:
            self.consumer.cancel()

    # ---- the consumer ---------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                if item is None:
                    await self._force_end()
                elif item == b"":
                    return
                else:
                    await self._frame(item)
            except Exception:  # a Redis hiccup must not kill the microphone
                log.exception("audio ingest failed for conversation %s", self.conversation_id)

    async def _frame(self, pcm: bytes) -> None:
        if self.endpointer is None:
            return
        for result in self.endpointer.push(pcm):
            if result.event == VadEvent.START:
                await self._start()
            for frame in result.frames:
                if self.writer is not None:
                    await self.writer.add({"pcm": frame})
            if result.event == VadEvent.END:
                await self._end(result.trailing_silence_ms)

    async def _force_end(self) -> None:
        if self.endpointer is not None:
            self.endpointer.force_end()
        if self.turn_key is not None:
            await self._end(0)

    async def _start(self) -> None:
        self.turn_key = streams.new_turn_key("u")
        self.writer = streams.StreamWriter(
            self.redis,
            streams.key(self.conversation_id, self.turn_key, "in"),
            self.settings.audio_stream_ttl_s,
        )
        await self.on_start(self.turn_key)

    async def _end(self, trailing_silence_ms: int) -> None:
        if self.writer is None or self.turn_key is None:
            return
        ended_at = streams.now_ms()
        last_voice = ended_at - trailing_silence_ms
        figures: Any = {marks.SPEECH_END: ended_at, marks.LAST_VOICE: last_voice}
        timing = streams.key(self.conversation_id, self.turn_key, "timing")
        # One round trip, the marks first: the transcriber finds them when it reads the end.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(timing, mapping=figures)
            pipe.expire(timing, self.settings.audio_stream_ttl_s)
            self.writer.queue(pipe, {"end": 1})
            await pipe.execute()
        turn_key, self.turn_key, self.writer = self.turn_key, None, None
        await self.on_end(turn_key)
