"""Redis streams that carry a turn's audio and partial text between the edge and the worker.

One turn of one conversation owns five keys, all expiring after `AUDIO_STREAM_TTL_S`:

- `in`:  the caller's audio frames (`pcm`), closed by an `end` entry;
- `stt`: interim and final transcripts for the page;
- `text`: the reply's text deltas (`d`), closed by `end`;
- `out`: the reply's audio frames (`pcm` with the offset `ms`), sentence marks and `end`;
- `timing`: a hash of epoch-millisecond marks (speech end, STT final, first token, ...);

and each speaker of the turn records how far it got beside `out` (`progress_key`).

Workflows see only the turn key; audio and token streams never enter a workflow payload.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

import redis.asyncio as aioredis

from convonet import redis_keys

StreamKind = Literal["in", "stt", "text", "out", "timing"]
# 20 ms frames: a 60 s utterance or reply fits in full.
MAX_STREAM_LEN = 4000


def key(conversation_id: str, turn_key: str, kind: StreamKind) -> str:
    return f"convonet:turn:{conversation_id}:{turn_key}:{kind}"


def progress_key(conversation_id: str, turn_key: str, writer: str) -> str:
    """Where one writer of the turn's streams records how far it got, in the same transaction
    as what it wrote, so a retry resumes exactly there. Expires with the streams."""
    return f"{key(conversation_id, turn_key, 'out')}:progress:{writer}"


def new_turn_key(kind: Literal["u", "t"]) -> str:
    """`u…` for an utterance, `t…` for a typed turn whose reply is spoken."""
    return kind + secrets.token_hex(6)


def now_ms() -> int:
    """Wall-clock epoch milliseconds: the edge and the worker compare marks across processes."""
    return int(time.time() * 1000)


def binary_client(url: str) -> aioredis.Redis:
    """Audio streams hold raw bytes, so this client does not decode responses. It reconnects
    like every other client (a blocking read survives a Redis restart)."""
    return redis_keys.client(url, decode_responses=False)


class StreamWriter:
    """Appends to one stream, capped in length, and sets its TTL on the first write."""

    def __init__(self, redis: aioredis.Redis, name: str, ttl_s: int) -> None:
        self.redis = redis
        self.name = name
        self.ttl_s = ttl_s
        self._expiry_set = False

    async def add(self, fields: dict[str, bytes | str | int]) -> None:
        values: Any = fields
        if self._expiry_set:
            await self.redis.xadd(self.name, values, maxlen=MAX_STREAM_LEN, approximate=True)
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue(pipe, fields)
            try:
                await pipe.execute()
            except BaseException:
                self._expiry_set = False  # the next write sets it again
                raise

    def queue(self, pipe: Any, fields: dict[str, bytes | str | int]) -> None:
        """Queues the entry on `pipe` (a pipeline the caller executes), so it travels in
        the same round trip as the caller's other commands."""
        values: Any = fields
        pipe.xadd(self.name, values, maxlen=MAX_STREAM_LEN, approximate=True)
        if not self._expiry_set:
            pipe.expire(self.name, self.ttl_s)
            self._expiry_set = True


async def mark(
    redis: aioredis.Redis, conversation_id: str, turn_key: str, name: str, ttl_s: int
) -> int:
    """Records a timing mark once (the first writer wins, so retries keep the original)."""
    at = now_ms()
    name_key = key(conversation_id, turn_key, "timing")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hsetnx(name_key, name, at)
        pipe.expire(name_key, ttl_s)
        await pipe.execute()
    return at


async def put_marks(
    redis: aioredis.Redis,
    conversation_id: str,
    turn_key: str,
    values: dict[str, int],
    ttl_s: int,
) -> None:
    """Records marks measured elsewhere (the edge knows when the last voiced frame came)."""
    name_key = key(conversation_id, turn_key, "timing")
    mapping: Any = values
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(name_key, mapping=mapping)
        pipe.expire(name_key, ttl_s)
        await pipe.execute()


async def marks(redis: aioredis.Redis, conversation_id: str, turn_key: str) -> dict[str, int]:
    raw = await redis.hgetall(key(conversation_id, turn_key, "timing"))
    return {_text(k): int(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


Entry = tuple[str, dict[bytes, bytes]]


async def read(
    redis: aioredis.Redis, name: str, after: str, block_ms: int, count: int = 100
) -> list[Entry]:
    """Entries of one stream after the id `after`, waiting up to `block_ms` for the first."""
    response: Any = await redis.xread({name: after}, count=count, block=block_ms)
    if not response:
        return []
    return [(_text(entry_id), dict(fields)) for entry_id, fields in response[0][1]]


async def read_many(
    redis: aioredis.Redis, offsets: dict[str, str], block_ms: int, count: int = 100
) -> list[tuple[str, Entry]]:
    """Entries of several streams (stream name, entry), waiting up to `block_ms`."""
    response: Any = await redis.xread(dict(offsets), count=count, block=block_ms)  # type: ignore[arg-type]
    out: list[tuple[str, Entry]] = []
    for name, entries in response or []:
        for entry_id, fields in entries:
            out.append((_text(name), (_text(entry_id), dict(fields))))
    return out
