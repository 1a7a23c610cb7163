"""The caller page in real headless Chromium: log in, type turns, resume after reload."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from convonet.seed import seed
from convonet.settings import Settings
from tests.system import running_system

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the page tests: apt-get install chromium")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), headless=True, executable_path=CHROMIUM, args=ARGS
        )
        try:
            yield context
        finally:
            await context.close()


async def _login(page: Page, pin: str) -> None:
    await page.fill("#pin", pin)
    await page.click("#login button")


async def test_caller_logs_in_talks_and_resumes(
    settings: Settings, browser: BrowserContext
) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        page = await browser.new_page()
        await page.goto(system.url + "/")
        await expect(page.locator("#status")).to_have_text("Enter your PIN to start.")

        await _login(page, "9999")
        await expect(page.locator("#error")).to_have_text("That PIN is not right.")

        await _login(page, "1234")
        transcript = page.locator("#transcript li")
        await expect(transcript.first).to_contain_text("Hi Alice, how can I help?")

        await page.fill("#text", "add a todo <img src=x onerror=alert(1)> test")
        await page.click("#say button[type=submit]")
        await expect(transcript.nth(2)).to_contain_text("Added")
        # Stored text comes back as text, never as markup.
        assert await page.locator("#transcript img").count() == 0

        await page.reload()
        await expect(page.locator("#status")).to_contain_text("as Alice Martin")
        await page.fill("#text", "what are my todos")
        await page.click("#say button[type=submit]")
        await expect(page.locator("#transcript li").nth(1)).to_contain_text("1 open todo")

        await page.click("#hangup")
        await expect(page.locator("#status")).to_contain_text("The call has ended")
