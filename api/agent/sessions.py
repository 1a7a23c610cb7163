"""Agent dashboard logins: a session in Redis behind an HttpOnly cookie, a CSRF token for
state-changing requests, and a per-address limit on wrong passwords."""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie

import redis.asyncio as aioredis

from convonet import redis_keys
from convonet.settings import Settings

COOKIE = "convonet_agent"
CSRF_HEADER = "X-CSRF-Token"


def _key(token: str) -> str:
    return f"convonet:agent-session:{redis_keys.token_digest(token)}"


def _failures_key(address: str) -> str:
    return f"convonet:agent-authfail:{address}"


@dataclass(frozen=True)
class AgentSession:
    agent_id: int
    csrf_token: str

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token, presented or "")


class AgentSessions:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis

    async def create(self, agent_id: int) -> tuple[str, AgentSession]:
        token = secrets.token_urlsafe(32)
        session = AgentSession(agent_id=agent_id, csrf_token=secrets.token_urlsafe(24))
        await self.redis.set(
            _key(token),
            json.dumps({"agent_id": agent_id, "csrf": session.csrf_token}),
            ex=self.settings.agent_session_ttl_s,
        )
        return token, session

    async def get(self, token: str | None) -> AgentSession | None:
        if not token or len(token) > 128:
            return None
        raw = await self.redis.get(_key(token))
        if not raw:
            return None
        data = json.loads(raw)
        return AgentSession(agent_id=int(data["agent_id"]), csrf_token=str(data["csrf"]))

    async def from_cookie_header(self, header: str | None) -> AgentSession | None:
        return await self.get(token_from_cookie_header(header))

    async def delete(self, token: str | None) -> None:
        if token:
            await self.redis.delete(_key(token))

    async def locked_out(self, address: str) -> bool:
        failures = await self.redis.get(_failures_key(address))
        return int(failures or 0) >= self.settings.max_agent_login_failures

    async def failed(self, address: str) -> None:
        key = _failures_key(address)
        await self.redis.incr(key)
        await self.redis.expire(key, self.settings.address_lockout_s)

    async def succeeded(self, address: str) -> None:
        await self.redis.delete(_failures_key(address))

    @property
    def secure_cookie(self) -> bool:
        return self.settings.public_base_url.startswith("https://")


def token_from_cookie_header(header: str | None) -> str | None:
    """The session token in a raw Cookie header, or None."""
    if not header:
        return None
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header)
    except Exception:  # a mangled Cookie header is simply no session
        return None
    morsel = cookies.get(COOKIE)
    return morsel.value if morsel else None
