"""Secrets, PINs and raw audio never reach the logs: a full call (wrong and right PINs,
typed and spoken turns, a transfer the agent answers and hangs up) on a real API and a
real worker process at DEBUG level, then every line both wrote is searched."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

from sqlalchemy import select

from convonet.agent_client import ScriptedAgent
from convonet.call_client import ScriptedCaller
from convonet.db.models import User
from convonet.db.session import session_scope
from convonet.security import pin_hash
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import silence
from tests.processes import process_env, start, stop, until_healthy
from tests.speech_samples import speak
from tests.system import free_port

# Distinctive, so a match is a leak and not a timestamp or an id.
PIN = "5829174"
WRONG_PIN = "8642097"
AGENT_PASSWORD = "agent-demo-2001"
# A logged audio frame would show as a long run of bytes escapes or base64.
RAW_BYTES = re.compile(r"(\\x[0-9a-f]{2}){16}")
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{400,}={0,2}")


async def _call(url: str) -> list[str]:
    """The call; returns every token the system handed out, which must not be logged."""
    agent = ScriptedAgent(url)
    await agent.login("dana", AGENT_PASSWORD)
    await agent.wait_for("agent_state", state="ready")
    caller = ScriptedCaller(url)
    await caller.connect()
    refused = await caller.request("authenticate", {"pin": WRONG_PIN})
    assert refused["ok"] and not refused["data"]["ok"]
    login = await caller.login(PIN)
    await caller.say("add a todo buy milk")
    await caller.open_mic()
    await caller.speak(speak("what's on my list") + silence(600), speed=2.0)
    await caller.say("transfer me to an agent")
    ring = (await agent.wait_for("ring", timeout=30))["call"]
    assert (await agent.request("answer", {"transfer_id": ring["transfer_id"]}))["ok"]
    await caller.wait_for("transfer", state="bridged", timeout=30)
    await agent.stream(silence(400))
    assert (await agent.request("hang_up", {"transfer_id": ring["transfer_id"]}))["ok"]
    await caller.wait_for("transfer", state="ended", timeout=30)
    await caller.close()
    tokens = [login["session_token"], agent.csrf, *agent.http.cookies.values()]
    await agent.close()
    return [token for token in tokens if token]


async def test_a_full_call_logs_no_secret_pin_or_audio(settings: Settings, tmp_path: Path) -> None:
    await seed(settings)
    async with session_scope(settings.effective_database_url) as session:
        alice = await session.scalar(select(User).where(User.email == "alice@example.com"))
        assert alice is not None
        alice.pin_hash = pin_hash(PIN, settings.pin_pepper)
    port = free_port()
    env = process_env(settings, port, log_level="DEBUG")
    logs = {role: tmp_path / f"{role}.log" for role in ("api", "worker")}
    processes = [start(role, env, log) for role, log in logs.items()]
    try:
        url = f"http://127.0.0.1:{port}"
        await until_healthy(url)
        tokens = await asyncio.wait_for(_call(url), timeout=120)
    finally:
        for process in processes:
            stop(process)

    text = {role: log.read_text(errors="replace") for role, log in logs.items()}
    assert "DEBUG" in text["api"] and "DEBUG" in text["worker"], "the run logged at DEBUG"
    assert "POST /api/agent/login" in text["api"], "the API's access log was captured"
    secrets = {
        "the PIN": PIN,
        "the wrong PIN": WRONG_PIN,
        "the PIN pepper": settings.pin_pepper,
        "the agent's password": AGENT_PASSWORD,
        **{f"token {token[:4]}…": token for token in tokens},
    }
    for role, content in text.items():
        for name, secret in secrets.items():
            assert secret not in content, f"{name} is in the {role} log"
            encoded = base64.b64encode(secret.encode()).decode()
            assert encoded not in content, f"{name} (base64) is in the {role} log"
        assert not RAW_BYTES.search(content), f"raw bytes in the {role} log"
        assert not LONG_BASE64.search(content), f"a long base64 run (audio?) in the {role} log"
    print(f"\nscanned {sum(len(t.splitlines()) for t in text.values())} log lines")
