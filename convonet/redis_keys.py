"""Every Redis key the product uses, in one place, so TTLs and names stay consistent."""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

PIN_HANDOFF_TTL_S = 30


def client(url: str) -> aioredis.Redis:
    return aioredis.from_url(url, decode_responses=True)


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
