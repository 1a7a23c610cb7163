"""Sessions end when they should: a caller's on hang-up and on expiry, an agent's on logout
and on expiry; the dashboard's cookie is HttpOnly, SameSite=Strict (Secure behind HTTPS)
and every state-changing request needs the CSRF token."""

from __future__ import annotations

import asyncio

import httpx

from api.app import create_app
from convonet.agent_client import ScriptedAgent
from convonet.call_client import ScriptedCaller
from convonet.seed import seed
from convonet.settings import Settings
from tests.system import running_system

AGENT = {"login": "dana", "password": "agent-demo-2001"}


async def _resume(url: str, conversation_id: str, token: str) -> dict[str, object]:
    caller = ScriptedCaller(url)
    try:
        return await caller.connect({"conversation_id": conversation_id, "session_token": token})
    finally:
        await caller.close()


async def test_a_hung_up_call_cannot_be_resumed(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        login = await caller.login("1234")
        ack = await caller.request("hang_up", {})
        assert ack["ok"]
        await caller.close()
        resumed = await _resume(system.url, status["conversation_id"], login["session_token"])
    assert resumed["authenticated"] is False
    assert resumed["conversation_id"] != status["conversation_id"]


async def test_an_expired_caller_session_cannot_be_resumed(settings: Settings) -> None:
    await seed(settings)
    settings = settings.model_copy(update={"session_ttl_s": 2})
    async with running_system(settings) as system:
        caller = ScriptedCaller(system.url)
        status = await caller.connect()
        login = await caller.login("1234")
        fresh = await _resume(system.url, status["conversation_id"], login["session_token"])
        assert fresh["authenticated"] is True
        await asyncio.sleep(3)
        # The live connection is refused too, not only a reconnect.
        refused = await caller.request("text_turn", {"text": "what are my todos"})
        await caller.close()
        expired = await _resume(system.url, status["conversation_id"], login["session_token"])
    assert refused["ok"] is False and refused["error"]["code"] == "not_authenticated"
    assert expired["authenticated"] is False


async def test_agent_cookie_flags_csrf_logout_and_expiry(settings: Settings) -> None:
    await seed(settings)
    settings = settings.model_copy(update={"agent_session_ttl_s": 2})
    async with running_system(settings, with_worker=False) as system:
        async with httpx.AsyncClient(base_url=system.url) as http:
            login = await http.post("/api/agent/login", json=AGENT)
            assert login.status_code == 200
            cookie = login.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert "secure" not in cookie  # plain http on loopback: a Secure cookie is lost
            csrf = login.json()["csrf_token"]
            assert csrf not in login.headers["set-cookie"]

            # State changes without the token, or with a wrong one, are refused and change
            # nothing: the session still works afterwards.
            assert (await http.post("/api/agent/logout")).status_code == 403
            wrong = await http.post("/api/agent/logout", headers={"X-CSRF-Token": "x" + csrf})
            assert wrong.status_code == 403
            assert (await http.get("/api/agent/me")).status_code == 200

            out = await http.post("/api/agent/logout", headers={"X-CSRF-Token": csrf})
            assert out.status_code == 204
            assert (await http.get("/api/agent/me")).status_code == 401

            again = await http.post("/api/agent/login", json=AGENT)
            assert again.status_code == 200
            assert (await http.get("/api/agent/me")).status_code == 200
            await asyncio.sleep(3)
            assert (await http.get("/api/agent/me")).status_code == 401


async def test_agent_cookie_is_secure_behind_https(settings: Settings) -> None:
    await seed(settings)
    public = "https://convonet.example"
    app = create_app(settings.model_copy(update={"public_base_url": public}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=public) as http:
        login = await http.post("/api/agent/login", json=AGENT)
    assert login.status_code == 200
    cookie = login.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert login.headers["strict-transport-security"].startswith("max-age=")


async def test_an_agent_socket_ends_with_its_login(settings: Settings) -> None:
    """A dashboard socket opened before a logout (here, in another tab) acts no more."""
    await seed(settings)
    async with running_system(settings, with_worker=False) as system:
        agent = ScriptedAgent(system.url)
        await agent.login()
        await agent.wait_for("agent_state", state="ready")
        assert (await agent.request("set_state", {"state": "not-ready"}))["ok"]
        out = await agent.http.post("/api/agent/logout", headers={"X-CSRF-Token": agent.csrf})
        assert out.status_code == 204
        refused = await agent.request("set_state", {"state": "ready"})
        assert refused["ok"] is False and refused["error"]["code"] == "not_authenticated"
        for _ in range(50):
            if not agent.sio.connected:
                break
            await asyncio.sleep(0.1)
        assert not agent.sio.connected
        await agent.http.aclose()
