"""Every Redis key the product uses, in one place, so TTLs and names stay consistent."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

log = logging.getLogger("convonet.redis")

PIN_HANDOFF_TTL_S = 30
# A client built from a URL gets no retries from redis-py: a Redis restart would fail every
# command in flight, blocking stream reads included. These ride through one, reconnecting
# (pub/sub subscriptions are renewed): backoffs of 0.2, 0.4, 0.8, 1 and 1 s, so a Redis that
# stays down fails a command after about 3.5 s, as before plus the wait.
RECONNECT_RETRIES = 5
RECONNECT_BACKOFF = ExponentialBackoff(cap=1.0, base=0.1)
CONNECT_TIMEOUT_S = 5.0


def client(url: str, decode_responses: bool = True) -> aioredis.Redis:
    return aioredis.from_url(
        url,
        decode_responses=decode_responses,
        retry=Retry(RECONNECT_BACKOFF, RECONNECT_RETRIES),
        retry_on_error=[ConnectionError, TimeoutError],
        socket_connect_timeout=CONNECT_TIMEOUT_S,
    )


# redis-py's PubSub.aclose() can stall on a connection whose reader was just cancelled
# (redis/redis-py#3941): every caller of this waits at most this long.
PUBSUB_CLOSE_S = 2.0


async def close_pubsub(pubsub: PubSub) -> None:
    """Closes a subscription within PUBSUB_CLOSE_S; the socket is dropped if it stalls."""
    with contextlib.suppress(RedisError, OSError):
        try:
            await asyncio.wait_for(pubsub.aclose(), PUBSUB_CLOSE_S)
        except builtins.TimeoutError:  # the builtin: this module's TimeoutError is redis-py's
            log.warning("closing a Redis subscription stalled for %.0f s: given up", PUBSUB_CLOSE_S)


def token_digest(token: str) -> str:
    """Session tokens are stored and passed around only as their digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def pin_handoff(token: str) -> str:
    # The edge parks a PIN here for the verifying activity, so the PIN never
    # enters a workflow payload or the Temporal history.
    return f"convonet:pin:{token}"


def session(digest: str) -> str:
    return f"convonet:session:{digest}"


def conversation_session(conversation_id: str) -> str:
    """Points from a conversation to its session digest, so ending it can revoke the session."""
    return f"convonet:conv-session:{conversation_id}"


def address_failures(address: str) -> str:
    return f"convonet:authfail:{address}"


def address_lock(address: str) -> str:
    return f"convonet:authlock:{address}"


# A status callback once delivered to its transfer, remembered for longer than Twilio keeps
# retrying one (its retries stop within minutes), so a replay of it changes nothing.
TWILIO_CALLBACK_TTL_S = 24 * 3600


def twilio_callback(call_sid: str, sequence: str) -> str:
    return f"convonet:twilio-callback:{call_sid}:{sequence}"
