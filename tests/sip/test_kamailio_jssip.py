"""The agent softphone (web/agent/softphone-sip.js, JsSIP) against a real SIP server.

Kamailio on loopback stands in for FusionPBX; headless Chromium registers to it over
WebSocket as extension 2001; SIPp places the call, with the X-Convonet-Conversation header a
Convonet PBX call carries. Checked on the wire and in the page: registration, ringing with
the right caller and conversation, decline (486 / 603), answer (200 OK), hold/resume
(re-INVITEs), mute, and hang-up (BYE).

The page is a throwaway harness that loads the softphone the way the dashboard does
(/vendor/jssip.min.js as a classic script, the module from /agent/). Only `HarnessPhone`
and `harness_site` know about it: switching to the real dashboard means replacing those two.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page

from tests.sip.sip_server import KamailioServer, SippResult, kamailio, run_sipp
from tests.web import browser

# The page fixture of the web tests (headless Debian Chromium via Playwright).
launch = browser.launch

ROOT = Path(__file__).resolve().parents[2]
JSSIP_BUNDLE = ROOT / "node_modules" / "jssip" / "dist" / "jssip.min.js"
SOFTPHONE = ROOT / "web" / "agent" / "softphone-sip.js"
EXTENSION = "2001"
# The stand-in PBX does not authenticate; the password only proves it never leaks.
PASSWORD = "s3cret-Agent-Pass"
CALLER_NAME = "Ada Lovelace"
CALLER_NUMBER = "15551234567"
STEP = 10_000  # ms: the longest any single step may take in the page

HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><title>softphone harness</title></head>
<body>
<audio id="remote" autoplay></audio>
<script src="/vendor/jssip.min.js"></script>
<script type="module">
  import { SipPhone } from "/agent/softphone-sip.js";
  const log = (window.phoneLog = []);
  window.startPhone = (config) => {
    window.phone = new SipPhone(
      { ...config, audioElement: document.getElementById("remote") },
      {
        onStatus: (text, registered) => log.push({ type: "status", text, registered }),
        onIncoming: (call) => log.push({ type: "incoming", ...call }),
        onCallState: (id, state, reason) => log.push({ type: "state", id, state, reason }),
        onError: (message) => log.push({ type: "error", message }),
        onHold: (id, held) => log.push({ type: "hold", id, held }),
      },
    );
    window.phone.start();
  };
  // A silent microphone that needs no device or permission.
  window.silentMic = () => new AudioContext().createMediaStreamDestination().stream;
  window.harnessReady = true;
</script>
</body></html>
"""


@contextlib.asynccontextmanager
async def harness_site() -> AsyncIterator[str]:
    """The harness page plus the two scripts, at the paths the API serves them."""
    if not JSSIP_BUNDLE.exists():
        pytest.fail(f"{JSSIP_BUNDLE} is missing: run `npm ci` in {ROOT}", pytrace=False)

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=HARNESS, content_type="text/html")

    def script(path: Path) -> Any:
        async def handler(_: web.Request) -> web.Response:
            # Module scripts must be served with a JavaScript MIME type.
            return web.Response(text=path.read_text(), content_type="text/javascript")

        return handler

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/vendor/jssip.min.js", script(JSSIP_BUNDLE))
    app.router.add_get("/agent/softphone-sip.js", script(SOFTPHONE))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class Incoming:
    id: str
    conversation_id: str | None
    caller_display: str
    caller_number: str | None


class HarnessPhone:
    """Drives the softphone inside the page and reads the events it reported."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(message.text))

    async def open(self, base_url: str) -> None:
        await self.page.goto(base_url)
        await self.page.wait_for_function("window.harnessReady === true", timeout=STEP)

    async def register(self, pbx: KamailioServer, extension: str) -> None:
        config = {
            "wsUrl": pbx.ws_url,
            "uri": f"sip:{extension}@{pbx.domain}",
            "username": extension,
            "password": PASSWORD,
            "displayName": f"Agent {extension}",
        }
        await self.page.evaluate("config => window.startPhone(config)", config)
        await self.page.wait_for_function(
            "window.phoneLog.some(e => e.type === 'status' && e.registered)", timeout=STEP
        )

    async def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = await self.page.evaluate("window.phoneLog")
        return events

    async def wait_incoming(self) -> Incoming:
        await self.page.wait_for_function(
            "window.phoneLog.some(e => e.type === 'incoming')", timeout=STEP
        )
        event = next(e for e in await self.events() if e["type"] == "incoming")
        return Incoming(
            event["id"], event["conversationId"], event["callerDisplay"], event["callerNumber"]
        )

    async def wait_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The first event of `kind` whose fields match, waiting for it to come."""
        match = {"type": kind, **fields}
        await self.page.wait_for_function(
            "match => window.phoneLog.some("
            "  e => Object.entries(match).every(([k, v]) => e[k] === v))",
            arg=match,
            timeout=STEP,
        )
        return next(e for e in await self.events() if all(e.get(k) == v for k, v in match.items()))

    async def wait_state(self, call_id: str, state: str) -> dict[str, Any]:
        return await self.wait_event("state", id=call_id, state=state)

    async def call(self, method: str, *args: Any) -> Any:
        """phone.<method>(...args) in the page; the silent mic stands in for `"mic"`."""
        return await self.page.evaluate(
            "([method, args]) => window.phone[method]("
            "  ...args.map(a => (a === 'mic' ? window.silentMic() : a)))",
            [method, list(args)],
        )


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[KamailioServer]:
    async with kamailio(tmp_path) as server:
        yield server
        # Shown by pytest only when the test failed: what the proxy saw.
        print(f"--- kamailio log ({server.log_path}) ---\n{server.log_tail(60)}")


@pytest.fixture
async def phone(pbx: KamailioServer, launch: browser.Launch) -> AsyncIterator[HarnessPhone]:
    """The softphone registered as extension 2001 on the stand-in PBX."""
    async with harness_site() as base_url:
        context = await launch()
        harness = HarnessPhone(await context.new_page())
        await harness.open(base_url)
        await harness.register(pbx, EXTENSION)
        yield harness
        await harness.page.evaluate("window.phone.stop()")
        # Nothing the softphone printed may carry the SIP password.
        assert not [line for line in harness.console if PASSWORD in line]


@contextlib.asynccontextmanager
async def caller(
    pbx: KamailioServer, workdir: Path, conversation: str, timeout: float = 15
) -> AsyncIterator[asyncio.Task[SippResult]]:
    """SIPp calling extension 2001 in the background; killed if the test leaves early."""
    keys = {
        "extension": EXTENSION,
        "conversation": conversation,
        "caller_name": CALLER_NAME,
        "caller_user": CALLER_NUMBER,
    }
    task = asyncio.create_task(run_sipp(pbx.sip_target, keys, workdir, timeout=timeout))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_registers_rings_with_caller_and_conversation_then_declines(
    pbx: KamailioServer, phone: HarnessPhone, tmp_path: Path
) -> None:
    conversation = uuid.uuid4().hex
    async with caller(pbx, tmp_path / "sipp", conversation) as call:
        incoming = await phone.wait_incoming()
        assert incoming.conversation_id == conversation
        assert incoming.caller_display == CALLER_NAME
        assert incoming.caller_number == CALLER_NUMBER
        await phone.wait_state(incoming.id, "ringing")

        assert await phone.call("decline", incoming.id) is True
        result = await call

    assert result.returncode == 0, result.explain()
    assert 180 in result.received_statuses(), result.explain()
    assert result.final_status() == 486, result.explain()
    ended = await phone.wait_state(incoming.id, "ended")
    assert ended["reason"] == "Rejected"
    assert await phone.page.evaluate("window.phone.callIds") == []


async def test_answer_hold_mute_and_hang_up(
    pbx: KamailioServer, phone: HarnessPhone, tmp_path: Path
) -> None:
    conversation = uuid.uuid4().hex
    async with caller(pbx, tmp_path / "sipp", conversation) as call:
        incoming = await phone.wait_incoming()
        assert await phone.call("answer", incoming.id, "mic") is True
        await phone.wait_state(incoming.id, "answered")

        # Hold and resume are re-INVITEs through Kamailio to the caller and back; onHold
        # reports each once the caller accepted it.
        assert await phone.call("setHold", incoming.id, True) is True
        await phone.wait_event("hold", id=incoming.id, held=True)
        assert await phone.call("setHold", incoming.id, False) is True
        await phone.wait_event("hold", id=incoming.id, held=False)
        # A quick hold-then-resume: the resume waits for the hold's re-INVITE to complete.
        assert await phone.call("setHold", incoming.id, True) is True
        assert await phone.call("setHold", incoming.id, False) is True
        await phone.page.wait_for_function(
            "id => window.phoneLog.filter(e => e.type === 'hold' && e.id === id).length === 4",
            arg=incoming.id,
            timeout=STEP,
        )
        holds = [e["held"] for e in await phone.events() if e["type"] == "hold"]
        assert holds == [True, False, True, False]

        assert await phone.call("setMuted", incoming.id, True) is True
        state = await phone.call("getCall", incoming.id)
        assert state == {"id": incoming.id, "answered": True, "muted": True, "held": False}

        assert await phone.call("hangUp", incoming.id) is True
        result = await call

    assert result.returncode == 0, result.explain()
    assert result.final_status() == 200, result.explain()
    assert result.received_statuses("INVITE").count(200) >= 1
    assert "BYE sip:" in result.messages  # the agent's BYE reached the caller
    assert result.messages.count("a=sendonly") == 2  # the two holds, as the caller saw them
    await phone.wait_state(incoming.id, "ended")
    errors = [e for e in await phone.events() if e["type"] == "error"]
    assert errors == []


async def test_untrusted_conversation_header_is_dropped_and_603_declines(
    pbx: KamailioServer, phone: HarnessPhone, tmp_path: Path
) -> None:
    async with caller(pbx, tmp_path / "sipp", "../../admin?x=<b>") as call:
        incoming = await phone.wait_incoming()
        assert incoming.conversation_id is None
        assert await phone.call("decline", incoming.id, 603) is True
        result = await call

    assert result.returncode == 0, result.explain()
    assert result.final_status() == 603, result.explain()
