"""The API process a caller's page talks to goes away, and the call goes on.

SIGTERM (a deploy): the API tells the page `going_away` before it closes, the page says the
server is restarting and reconnects at once to the next API process at the same address.
kill -9 (a crash): the page finds the socket dropped, backs off and reconnects. Both
times it resumes the same conversation, logged in, and the assistant remembers it."""

from __future__ import annotations

import signal
from pathlib import Path

from playwright.async_api import Page, expect

from convonet.seed import seed
from convonet.settings import Settings
from convonet.temporal_client import connect
from tests.processes import process_env, start, stop, until_healthy
from tests.system import free_port
from tests.web.browser import Launch, wait_until
from tests.web.test_caller_page import _logged_in_page
from worker import running_worker

CONVERSATION = "window.__wire.sockets.length"


async def _say(page: Page, text: str, expected: str) -> None:
    await page.fill("#text", text)
    await page.click("#say button[type=submit]")
    await expect(page.locator("#transcript li").last).to_contain_text(expected, timeout=15_000)


async def _conversation(page: Page) -> str:
    saved: str = await page.evaluate("sessionStorage.getItem('convonet.session')")
    assert saved, "the page keeps its session for a reconnect"
    return saved


async def test_page_survives_a_restart_and_a_crash_of_its_api(
    settings: Settings, launch: Launch, tmp_path: Path
) -> None:
    await seed(settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_env(settings, port)
    log = tmp_path / "api.log"
    client = await connect(settings, with_agent_plugin=True)
    context = await launch()
    async with running_worker(client, settings):
        api = start("api", env, log)
        try:
            await until_healthy(url)
            page = await _logged_in_page(context, url)
            await _say(page, "add a todo renew the lease", "renew the lease")
            print(f"\n    caller page logged in on the API (pid {api.pid}), turn 1 answered")
            session = await _conversation(page)
            sockets = await page.evaluate(CONVERSATION)

            # A deploy: the old process says so and the page is back as soon as the next is.
            stop(api, signal.SIGTERM)
            assert "Application shutdown complete" in log.read_text(), "a graceful stop"
            await expect(page.locator("#error")).to_have_text(
                "Convonet is restarting. Reconnecting…"
            )
            print("    SIGTERM: the API stopped gracefully; the page says Convonet is restarting")
            api = start("api", env, log)
            await until_healthy(url)
            await wait_until(page, f"{CONVERSATION} > {sockets}", timeout=15_000)
            await expect(page.locator("#status")).to_contain_text("Talking with the assistant")
            assert await _conversation(page) == session
            await _say(page, "what are my todos", "renew the lease")
            print(
                f"    next API (pid {api.pid}): the page resumed the same conversation, turn 2 ok"
            )
            sockets = await page.evaluate(CONVERSATION)

            # A crash: no notice, the page backs off and retries until the next process.
            stop(api, signal.SIGKILL)
            await expect(page.locator("#error")).to_have_text("Can't reach Convonet. Retrying…")
            api = start("api", env, log)
            await until_healthy(url)
            await wait_until(page, f"{CONVERSATION} > {sockets}", timeout=20_000)
            await expect(page.locator("#status")).to_contain_text("Talking with the assistant")
            assert await _conversation(page) == session
            await _say(page, "what are my todos", "renew the lease")
            print(f"    kill -9, next API (pid {api.pid}): resumed again, the todo still listed")
        finally:
            stop(api, signal.SIGKILL)
    assert "going_away" not in log.read_text()  # the notice is an event, not an error
