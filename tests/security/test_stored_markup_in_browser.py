"""Script and HTML stored in every field the pages show stay text, in real headless Chromium.

The caller's name, team names, todo titles and reminder texts, and the agent's name hold
markup in the database; the caller logs in on the voice page, lists them, types markup into
a turn, and asks for a person; the agent dashboard rings with the warm hand-off (name, teams,
open todos, the conversation so far), is answered and hung up. Nothing runs, no element is
injected into either page, and the markup is on screen as the literal text it is.

The pages' Content-Security-Policy would stop the scripts even if markup were injected, so
the test looks for injected elements in the DOM, not only for scripts that ran."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Page, expect
from sqlalchemy import select

from convonet.db.models import Agent, Reminder, Team, TeamMembership, TeamRole, Todo, User
from convonet.db.session import session_scope
from convonet.seed import DEMO_TEAM, seed
from convonet.settings import Settings
from tests.system import running_system
from tests.web.browser import Launch, launch, wait_until
from tests.web.test_caller_page import _logged_in_page
from tests.web.test_transfer_in_browser import FAKE_MIC, _agent_ready, _bridged, _ringing

__all__ = ["launch"]

# One marker per field, so a failure says which one ran.
CALLER_NAME = 'Alice<svg/onload=window.__pwned="name"> <img src=x onerror="window.__pwned=1">Martin'
TEAM = '"><svg onload="window.__pwned=\'team\'">Demo'
SECOND_TEAM = "<script>window.__pwned='team2'</script>Ops"
TODO_IMG = "pay rent <img src=x onerror=\"window.__pwned='todo'\">"
TODO_SCRIPT = "<script>window.__pwned='todo2'</script> call the bank"
REMINDER = 'dentist <iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>'
AGENT_NAME = "Dana <img src=x onerror=\"window.__pwned='agent'\">Agent"
TYPED = "add a todo buy milk <img src=x onerror=\"window.__pwned='typed'\">"

# What markup would leave behind in the DOM: none of these exists on either page.
INJECTED = (
    "img, svg, iframe, script:not([src]), "
    "[onload], [onerror], [onclick], [onmouseover], [onfocus], [srcdoc]"
)
INERT = f"""() => ({{
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  injected: Array.from(document.querySelectorAll({INJECTED!r}), (e) => e.outerHTML),
}})"""


async def _store_markup(settings: Settings) -> None:
    async with session_scope(settings.effective_database_url) as db:
        alice = await db.scalar(select(User).where(User.email == "alice@example.com"))
        team = await db.scalar(select(Team).where(Team.name == DEMO_TEAM))
        dana = await db.scalar(select(Agent).where(Agent.login == "dana"))
        assert alice is not None and team is not None and dana is not None
        alice.name = CALLER_NAME
        team.name = TEAM
        dana.name = AGENT_NAME
        second = Team(name=SECOND_TEAM, description="<b>bold</b>")
        db.add(second)
        await db.flush()
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        db.add_all(
            [
                TeamMembership(team_id=second.id, user_id=alice.id, role=TeamRole.MEMBER),
                Todo(title=TODO_IMG, creator_id=alice.id),
                Todo(title=TODO_SCRIPT, creator_id=alice.id),
                Reminder(user_id=alice.id, text=REMINDER, remind_at=tomorrow),
            ]
        )


async def _inert(page: Page) -> None:
    found: dict[str, Any] = await page.evaluate(INERT)
    assert found == {"pwned": None, "injected": []}, found


async def _turn(page: Page, text: str) -> str:
    """Types one turn on the caller page; the assistant's answer once it is on screen."""
    answers = page.locator("#transcript li.assistant")
    before = await answers.count()
    await page.fill("#text", text)
    await page.click("#say button[type=submit]")
    await expect(answers).to_have_count(before + 1, timeout=20_000)
    reply = answers.nth(before)
    await wait_until(page, "!document.querySelector('#transcript li.assistant.streaming')")
    return await reply.inner_text()


async def test_stored_markup_stays_text_on_both_pages(settings: Settings, launch: Launch) -> None:
    await seed(settings)
    await _store_markup(settings)
    # Fake microphones: answering bridges both pages' audio.
    agent_context = await launch(*FAKE_MIC)
    caller_context = await launch(*FAKE_MIC)
    async with running_system(settings) as system:
        agent = await _agent_ready(agent_context, system.url)
        await expect(agent.locator("#agent-name")).to_have_text(AGENT_NAME)

        caller = await _logged_in_page(caller_context, system.url)
        greeting = caller.locator("#transcript li.assistant").first
        await expect(greeting).to_contain_text('Hi Alice<svg/onload=window.__pwned="name">,')
        await expect(caller.locator("#status")).to_have_text(
            f"Talking with the assistant as {CALLER_NAME}."
        )
        # The assistant reads stored text out (markup characters spoken as pauses).
        assert "pay rent" in await _turn(caller, "what are my todos")
        assert "Ops" in await _turn(caller, "list my teams")
        assert "dentist" in await _turn(caller, "reminders for tomorrow")
        assert "buy milk" in await _turn(caller, TYPED)
        await expect(caller.locator("#transcript li.user").last).to_have_text(f"You {TYPED}")
        await _inert(caller)

        await _turn(caller, "transfer me to an agent")
        await _ringing(agent)
        await expect(caller.locator("#transfer-status")).to_have_text(
            f"Ringing {AGENT_NAME}…", timeout=10_000
        )
        popup = agent.locator("#call-popup")
        await expect(popup).to_be_visible()
        await expect(popup.locator("[data-field=caller-name]")).to_have_text(CALLER_NAME)
        await expect(popup.locator("[data-field=teams] li")).to_have_text(
            [TEAM, SECOND_TEAM], timeout=10_000
        )
        titles = popup.locator("[data-field=todos] .todo-title")
        await expect(titles.filter(has_text=TODO_IMG)).to_have_count(1)
        await expect(titles.filter(has_text=TODO_SCRIPT)).to_have_count(1)
        await expect(titles.filter(has_text="buy milk <img src=x")).to_have_count(1)
        transcript = popup.locator("[data-field=transcript] li.user")
        await expect(transcript.filter(has_text=TYPED)).to_have_count(1)
        await expect(popup.locator("[data-field=summary]")).to_contain_text(
            f"{CALLER_NAME} asked the assistant to be put through to"
        )
        await _inert(agent)
        await _inert(caller)

        # Connected: the caller page names the agent, the dashboard's outcome form the caller.
        await agent.click("#answer")
        await _bridged(agent, caller)
        await expect(caller.locator("#stage")).to_have_text(f"Talking with {AGENT_NAME}")
        await _inert(agent)
        await _inert(caller)
        await agent.click("#hang-up")
        await expect(agent.locator("#disposition-form")).to_be_visible(timeout=10_000)
        await expect(agent.locator("#disposition-title")).to_have_text(
            f"Call outcome: {CALLER_NAME}"
        )
        await expect(caller.locator("#transfer-status")).to_have_text(
            f"Call with {AGENT_NAME} ended", timeout=10_000
        )
        await _inert(agent)
        await _inert(caller)
