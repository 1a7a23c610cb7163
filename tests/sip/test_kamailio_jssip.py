"""The agent dashboard (/agent/) in PBX mode: the real page, the real API, a real SIP server.

Kamailio on loopback stands in for FusionPBX. The API runs with `fusionpbx_wss_url` pointing
at Kamailio's WebSocket, so the dashboard logs in, fetches its SIP credentials from
/api/agent/sip, loads JsSIP from /vendor/ and registers as extension 2001 (dana, the demo
agent). SIPp then places the call a Convonet transfer would: an INVITE to 2001 carrying
X-Convonet-Conversation. The page looks the conversation up (/api/agent/calls/lookup) and
shows the screen pop of the call record the test put in the database.

Checked in the page and on the wire: credentials only after login and never in the console,
registration, ringing with the caller's details, decline (486), the fallback popup when the
conversation is not this agent's (or the header is not a conversation id), and answer, hold,
resume, mute and hang-up (200 OK, re-INVITEs, BYE) through the dashboard's buttons.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Locator, Page, Request, expect
from sqlalchemy import select

from convonet.db.models import (
    Agent,
    AgentState,
    CallRecord,
    Department,
    Priority,
    Todo,
    User,
)
from convonet.db.session import session_scope
from convonet.security import hash_password
from convonet.seed import seed
from convonet.settings import Settings
from tests.sip.sip_server import KamailioServer, SippResult, kamailio, run_sipp
from tests.system import run_api
from tests.web import browser
from tests.web.browser import wait_until

# The page fixture of the web tests (headless Debian Chromium via Playwright).
launch = browser.launch

EXTENSION = "2001"  # dana's extension and SIP user (convonet.seed)
AGENT_LOGIN = "dana"
AGENT_PASSWORD = "agent-demo-2001"
# The stand-in PBX does not authenticate; the password only proves it never leaks.
SIP_PASSWORD = "s3cret-Agent-SIP-Pass-7f3a"
CALLER_NAME = "Ada Lovelace"  # the SIP display name; the screen pop names the account holder
CALLER_NUMBER = "15551234567"
REASON = "Wants to upgrade to the team plan"
SUMMARY = "Alice asked about pricing for five more seats and wants a person to confirm it."
TRANSCRIPT = [
    {"role": "user", "text": "How much would five more seats cost?"},
    {"role": "assistant", "text": "Let me put you through to sales."},
]
TODO_TITLE = "Renew the team plan"
STEP = 10_000  # ms: the longest any single step may take in the page
FAKE_MIC = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
# A SIP message as JsSIP writes it on its WebSocket (the Socket.IO frames are not).
SIP_START = re.compile(r"^(?:[A-Z]+ sips?:\S+ SIP/2\.0|SIP/2\.0 \d{3} )")


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[KamailioServer]:
    async with kamailio(tmp_path) as server:
        yield server
        # Shown by pytest only when the test failed: what the proxy saw.
        print(f"--- kamailio log ({server.log_path}) ---\n{server.log_tail(60)}")


@pytest.fixture
async def pbx_settings(settings: Settings, pbx: KamailioServer) -> Settings:
    """PBX mode towards the stand-in, the demo data, and a SIP password for dana."""
    pbx_mode = settings.model_copy(
        update={"fusionpbx_wss_url": pbx.ws_url, "fusionpbx_domain": pbx.domain}
    )
    await seed(pbx_mode)
    async with session_scope(pbx_mode.effective_database_url) as db:
        agent = await db.scalar(select(Agent).where(Agent.login == AGENT_LOGIN))
        assert agent is not None and agent.sip_username == EXTENSION
        agent.sip_password = SIP_PASSWORD
    return pbx_mode


async def offer_call(settings: Settings, conversation_id: str, agent_login: str) -> int:
    """A call record as a transfer leaves it while the agent's phone rings: Alice, calling
    sales, offered to `agent_login`. Returns its id."""
    async with session_scope(settings.effective_database_url) as db:
        alice = await db.scalar(select(User).where(User.email == "alice@example.com"))
        agent = await db.scalar(select(Agent).where(Agent.login == agent_login))
        sales = await db.scalar(select(Department).where(Department.name == "sales"))
        assert alice is not None and agent is not None and sales is not None
        db.add(
            Todo(
                title=TODO_TITLE,
                creator_id=alice.id,
                priority=Priority.HIGH,
                due=datetime.now(UTC) + timedelta(days=3),
            )
        )
        now = datetime.now(UTC)
        record = CallRecord(
            conversation_id=conversation_id,
            user_id=alice.id,
            agent_id=agent.id,
            department_id=sales.id,
            state="ringing",
            reason=REASON,
            summary=SUMMARY,
            transcript=TRANSCRIPT,
            transfer_id=f"{conversation_id}-transfer-1",
            dialing_at=now,
            ringing_at=now,
        )
        db.add(record)
        await db.flush()
        return record.id


async def add_other_agent(settings: Settings) -> None:
    """A second agent (extension 2002) that calls can be offered to instead of dana."""
    async with session_scope(settings.effective_database_url) as db:
        db.add(
            Agent(
                name="Erin Other",
                login="erin",
                password_hash=hash_password("agent-demo-2002"),
                sip_extension="2002",
                sip_username="2002",
                sip_password="erin-sip-password",
                state=AgentState.READY,
            )
        )


@dataclass
class Dashboard:
    """The agent dashboard page, with what it printed and which look-ups it made."""

    page: Page
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("request", self._request)

    def _request(self, request: Request) -> None:
        if "/api/agent/calls/lookup" in request.url:
            self.lookups.append(request.url)

    @property
    def popup(self) -> Locator:
        return self.page.locator("#call-popup")

    def field(self, name: str) -> Locator:
        return self.page.locator(f'#call-popup [data-field="{name}"]')

    async def status_of(self, path: str) -> int:
        """The HTTP status of a GET from inside the page (with its cookies)."""
        status: int = await self.page.evaluate(
            "path => fetch(path, {cache: 'no-store'}).then(r => r.status)", path
        )
        return status

    async def log_in(self) -> None:
        await self.page.fill("#agent-login", AGENT_LOGIN)
        await self.page.fill("#agent-password", AGENT_PASSWORD)
        await self.page.click("#agent-login-button")

    async def wait_registered(self) -> None:
        await wait_until(
            self.page,
            "(h => h.mode === 'pbx' && h.phone === 'registered')(window.convonetAgent)",
            timeout=STEP,
        )
        await expect(self.page.locator("#phone-status")).to_have_text("Registered")

    async def hooks(self) -> dict[str, Any]:
        hooks: dict[str, Any] = await self.page.evaluate(
            "(({mode, state, phone, call, lastCall, ringing}) =>"
            " ({mode, state, phone, call, lastCall, ringing}))(window.convonetAgent)"
        )
        return hooks

    async def wait_ringing(self, conversation_id: str | None) -> None:
        await wait_until(
            self.page,
            "id => { const h = window.convonetAgent;"
            " return h.ringing && h.call?.state === 'ringing' && h.call.conversation_id === id; }",
            arg=conversation_id,
            timeout=STEP,
        )
        await expect(self.popup).to_be_visible()
        await expect(self.page.locator("#call-title")).to_have_text("Incoming call")

    async def sip_sent(self) -> list[str]:
        """Every SIP message the page's JsSIP sent to the PBX, in order (from the WebSocket
        spy the web tests install in every page)."""
        sent: list[Any] = await self.page.evaluate("window.__wire.sent")
        return [m for m in sent if isinstance(m, str) and SIP_START.match(m)]

    async def wait_sip_sent(self, pattern: str, count: int = 1) -> None:
        """Until the page has sent `count` SIP messages whose first line matches `pattern`."""
        await wait_until(
            self.page,
            "([pattern, count]) => window.__wire.sent.filter(m => typeof m === 'string'"
            " && new RegExp(pattern).test(m.split('\\r\\n')[0])).length >= count",
            arg=[pattern, count],
            timeout=STEP,
        )

    async def assert_secret_never_shown(self) -> None:
        """The SIP password is nowhere the agent (or a screen recording) could read it."""
        assert not [line for line in self.console if SIP_PASSWORD in line], self.console
        assert not [error for error in self.page_errors if SIP_PASSWORD in error]
        shown: str = await self.page.evaluate(
            "JSON.stringify([document.documentElement.outerHTML, document.title,"
            " {...localStorage}, {...sessionStorage}, window.convonetAgent])"
        )
        assert SIP_PASSWORD not in shown


@pytest.fixture
async def dashboard(pbx_settings: Settings, launch: browser.Launch) -> AsyncIterator[Dashboard]:
    """/agent/ open in Chromium (fake microphone) against the API in PBX mode; not logged in."""
    context = await launch(*FAKE_MIC)
    async with run_api(pbx_settings) as url:
        page = await context.new_page()
        agent = Dashboard(page)
        await page.goto(url + "/agent/")
        await expect(page.locator("#login-form")).to_be_visible(timeout=STEP)
        try:
            yield agent
        finally:
            # Closed before the API stops: JsSIP's and Socket.IO's sockets go with the page.
            await page.close()
    assert agent.page_errors == [], agent.page_errors


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


async def test_dashboard_registers_rings_with_screen_pop_and_declines(
    pbx: KamailioServer, pbx_settings: Settings, dashboard: Dashboard, tmp_path: Path
) -> None:
    page = dashboard.page
    # No session, no SIP credentials.
    assert await dashboard.status_of("/api/agent/sip") == 401

    await dashboard.log_in()
    await dashboard.wait_registered()
    await expect(page.locator("#agent-name")).to_have_text("Dana Agent")
    await expect(page.locator("#agent-extension")).to_have_text(EXTENSION)
    await expect(dashboard.popup).to_be_hidden()
    # What the page registered as: the AOR SIPp's INVITE to 2001 reaches through Kamailio.
    registers = [m for m in await dashboard.sip_sent() if m.startswith("REGISTER ")]
    assert registers, await dashboard.sip_sent()
    assert f"<sip:{EXTENSION}@{pbx.domain}>" in registers[0]

    conversation = uuid.uuid4().hex
    record_id = await offer_call(pbx_settings, conversation, AGENT_LOGIN)
    async with caller(pbx, tmp_path / "sipp", conversation) as call:
        await dashboard.wait_ringing(conversation)
        # The screen pop of the call record, looked up by the conversation id of the INVITE.
        await expect(dashboard.field("caller-name")).to_have_text("Alice Martin", timeout=STEP)
        await expect(dashboard.field("department")).to_have_text("sales")
        await expect(dashboard.field("reason")).to_have_text(REASON)
        await expect(dashboard.field("teams").locator("li")).to_have_text(["Demo Team"])
        await expect(dashboard.field("todos").locator("li")).to_contain_text([TODO_TITLE])
        await expect(dashboard.field("summary")).to_have_text(SUMMARY)
        await expect(dashboard.field("transcript").locator("li")).to_have_text(
            [f"Caller: {TRANSCRIPT[0]['text']}", f"Assistant: {TRANSCRIPT[1]['text']}"]
        )
        await expect(dashboard.field("details-status")).to_be_hidden()
        await expect(page.locator("#ring-countdown")).to_contain_text("Answer within")
        await expect(page.locator("#answer")).to_be_enabled()
        hooks = await dashboard.hooks()
        assert hooks["call"]["call_record_id"] == record_id
        assert hooks["call"]["transfer_id"] == f"{conversation}-transfer-1"
        assert hooks["call"]["caller_name"] == "Alice Martin"
        assert dashboard.lookups and all(conversation in url for url in dashboard.lookups)
        # The phone said it rings (180) before the agent did anything.
        await dashboard.wait_sip_sent(r"^SIP/2\.0 180 ")

        await page.click("#decline")
        result = await call

    assert result.returncode == 0, result.explain()
    assert 180 in result.received_statuses(), result.explain()
    assert result.final_status() == 486, result.explain()
    await expect(dashboard.popup).to_be_hidden()
    await expect(page.locator("#notice")).to_have_text("You declined the call from Alice Martin.")
    hooks = await dashboard.hooks()
    assert hooks["call"] is None and hooks["ringing"] is False
    assert hooks["lastCall"]["state"] == "ended"
    assert hooks["phone"] == "registered"
    await dashboard.assert_secret_never_shown()


async def test_call_that_is_not_this_agents_shows_no_caller_details(
    pbx: KamailioServer, pbx_settings: Settings, dashboard: Dashboard, tmp_path: Path
) -> None:
    page = dashboard.page
    await dashboard.log_in()
    await dashboard.wait_registered()

    # A live call of this conversation exists, but it is offered to another agent: dana's
    # page must not get Alice's details from it.
    await add_other_agent(pbx_settings)
    conversation = uuid.uuid4().hex
    await offer_call(pbx_settings, conversation, "erin")
    async with caller(pbx, tmp_path / "sipp-other", conversation) as call:
        await dashboard.wait_ringing(conversation)
        await expect(dashboard.field("details-status")).to_have_text(
            "Caller details unavailable", timeout=STEP
        )
        await expect_fallback(dashboard)
        assert len(dashboard.lookups) == 1 and conversation in dashboard.lookups[0]
        await page.click("#decline")
        result = await call
    assert result.returncode == 0, result.explain()
    assert result.final_status() == 486, result.explain()
    await expect(dashboard.popup).to_be_hidden()
    await expect(page.locator("#notice")).to_have_text(f"You declined the call from {CALLER_NAME}.")

    # A header that is not a conversation id is dropped: no look-up at all, same fallback.
    async with caller(pbx, tmp_path / "sipp-bad", "../../admin?x=<b>") as call:
        await dashboard.wait_ringing(None)
        await expect(dashboard.field("details-status")).to_have_text("Caller details unavailable")
        await expect_fallback(dashboard)
        await page.click("#decline")
        result = await call
    assert result.returncode == 0, result.explain()
    assert result.final_status() == 486, result.explain()
    assert len(dashboard.lookups) == 1, dashboard.lookups
    await expect(dashboard.popup).to_be_hidden()
    await dashboard.assert_secret_never_shown()


async def expect_fallback(dashboard: Dashboard) -> None:
    """The popup shows only what the INVITE said: the SIP display name, nothing of Alice."""
    await expect(dashboard.field("caller-name")).to_have_text(CALLER_NAME)
    await expect(dashboard.field("department")).to_have_text("—")
    await expect(dashboard.field("reason")).to_have_text("—")
    await expect(dashboard.field("summary")).to_have_text("No summary.")
    await expect(dashboard.field("teams")).to_be_hidden()
    await expect(dashboard.field("todos")).to_be_hidden()
    await expect(dashboard.field("transcript")).to_be_hidden()
    await expect(dashboard.popup).not_to_contain_text("Alice")
    await expect(dashboard.popup).not_to_contain_text("Demo Team")
    await expect(dashboard.page.locator("#answer")).to_be_enabled()
    hooks = await dashboard.hooks()
    assert hooks["call"]["call_record_id"] is None
    assert hooks["call"]["caller_name"] == CALLER_NAME


async def test_answer_hold_resume_mute_and_hang_up_from_the_dashboard(
    pbx: KamailioServer, pbx_settings: Settings, dashboard: Dashboard, tmp_path: Path
) -> None:
    page = dashboard.page
    await dashboard.log_in()
    await dashboard.wait_registered()
    conversation = uuid.uuid4().hex
    record_id = await offer_call(pbx_settings, conversation, AGENT_LOGIN)

    async with caller(pbx, tmp_path / "sipp", conversation) as call:
        await dashboard.wait_ringing(conversation)
        await expect(dashboard.field("caller-name")).to_have_text("Alice Martin", timeout=STEP)

        # Answer: the fake microphone goes into a WebRTC answer, 200 OK to the caller.
        await page.click("#answer")
        await dashboard.wait_sip_sent(r"^SIP/2\.0 200 ")
        # The caller's ACK confirms the call: the dashboard shows it connected.
        await wait_until(page, "window.convonetAgent.call?.state === 'bridged'", timeout=STEP)
        assert (await dashboard.hooks())["ringing"] is False
        await expect(page.locator("#call-title")).to_have_text("On a call")
        await expect(page.locator("#call-timer")).to_be_visible()
        await expect(page.locator("#hang-up")).to_be_enabled()

        # Hold and resume are re-INVITEs through Kamailio to the caller; each one is done
        # when the page ACKs the caller's 200 OK.
        await expect(page.locator("#hold")).to_be_enabled()
        await page.click("#hold")
        await expect(page.locator("#hold")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#call-status")).to_contain_text("On hold.")
        await dashboard.wait_sip_sent(r"^ACK ", 1)
        await expect(page.locator("#hold")).to_be_enabled()
        await page.click("#hold")
        await expect(page.locator("#hold")).to_have_attribute("aria-pressed", "false")
        await dashboard.wait_sip_sent(r"^ACK ", 2)
        reinvites = [m for m in await dashboard.sip_sent() if m.startswith("INVITE ")]
        assert len(reinvites) == 2, reinvites
        assert "a=sendonly" in reinvites[0] and "a=sendrecv" in reinvites[1]

        # Mute stays in the browser: no SIP, the status says so.
        await page.click("#mute")
        await expect(page.locator("#mute")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#call-status")).to_contain_text("Muted")

        await page.click("#hang-up")
        result = await call

    assert result.returncode == 0, result.explain()
    assert result.final_status() == 200, result.explain()
    assert "BYE sip:" in result.messages  # the agent's BYE reached the caller
    assert result.messages.count("a=sendonly") == 1  # the hold, as the caller saw it
    # Answered and over: the popup stays for the outcome of this call record.
    await expect(page.locator("#disposition-form")).to_be_visible(timeout=STEP)
    await expect(page.locator("#disposition-title")).to_have_text("Call outcome: Alice Martin")
    hooks = await dashboard.hooks()
    assert hooks["call"]["state"] == "ended"
    assert hooks["call"]["call_record_id"] == record_id
    await expect(page.locator("#agent-error")).to_be_hidden()
    await dashboard.assert_secret_never_shown()
