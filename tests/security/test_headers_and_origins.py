"""Browser-facing hardening: security headers with a Content-Security-Policy the pages
really run under, CORS locked to the configured origins for both REST and Socket.IO."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from convonet.seed import seed
from convonet.settings import Settings
from tests.system import running_system
from tests.web.browser import Launch, launch, wait_until
from tests.web.test_caller_page import _logged_in_page

__all__ = ["launch"]

FOREIGN = "http://evil.example"
# Every violation the page meets, recorded before any of its scripts run.
VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


async def test_pages_and_api_send_security_headers(settings: Settings) -> None:
    async with running_system(settings, with_worker=False) as system:
        async with httpx.AsyncClient(base_url=system.url) as http:
            for path in ("/", "/agent/", "/healthz", "/caller.js"):
                response = await http.get(path)
                headers = response.headers
                policy = headers["content-security-policy"]
                assert "script-src 'self'" in policy, path
                assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
                assert "frame-ancestors 'none'" in policy
                assert headers["x-content-type-options"] == "nosniff"
                assert headers["x-frame-options"] == "DENY"
                assert headers["referrer-policy"] == "no-referrer"


async def test_other_origins_get_no_cors_and_no_socket(settings: Settings) -> None:
    async with running_system(settings, with_worker=False) as system:
        async with httpx.AsyncClient(base_url=system.url) as http:
            preflight = await http.options(
                "/api/agent/login",
                headers={"Origin": FOREIGN, "Access-Control-Request-Method": "POST"},
            )
            assert "access-control-allow-origin" not in preflight.headers
            login = await http.post(
                "/api/agent/login",
                json={"login": "dana", "password": "x"},
                headers={"Origin": FOREIGN},
            )
            assert "access-control-allow-origin" not in login.headers

            # Socket.IO's handshake: a page of another origin is refused, our own is let in.
            query = {"EIO": "4", "transport": "polling"}
            refused = await http.get("/socket.io/", params=query, headers={"Origin": FOREIGN})
            assert refused.status_code == 400
            own = await http.get("/socket.io/", params=query, headers={"Origin": system.url})
            assert own.status_code == 200 and own.text.startswith("0{")


async def test_the_pages_run_under_their_policy(settings: Settings, launch: Launch) -> None:
    """The caller page logs in and answers, the dashboard logs in, and neither meets a
    single policy violation: the policy is strict and still lets the product work."""
    await seed(settings)
    context = await launch()
    await context.add_init_script(VIOLATIONS)
    async with running_system(settings) as system:
        page = await _logged_in_page(context, system.url)
        await page.fill("#text", "what are my todos")
        await page.click("#say button[type=submit]")
        await expect(page.locator("#transcript li").last).to_contain_text("todo")
        agent = await context.new_page()
        await agent.goto(system.url + "/agent/")
        await agent.fill("#agent-login", "dana")
        await agent.fill("#agent-password", "agent-demo-2001")
        await agent.click("#agent-login-button")
        await wait_until(
            agent, "window.convonetAgent && window.convonetAgent.state === 'ready'", timeout=15_000
        )
        assert await page.evaluate("window.__violations") == []
        assert await agent.evaluate("window.__violations") == []
