"""Headless Chromium for the page tests: launch options, and a spy on the page's wire."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from convonet.speech.audio import resample, write_wav

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WEB_DIR = Path(__file__).resolve().parents[2] / "web"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
MIC_ERROR = "Microphone access was refused. Allow it in the browser, or type your request below."

# Records every WebSocket the page opens and every message it sends, so tests can read the
# wire and play the server's part (inject events) on the page's own connection.
WIRE_SPY = """
(() => {
  const Native = window.WebSocket;
  window.__wire = { sockets: [], sent: [] };
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__wire.sockets.push(this);
    }
    send(data) {
      window.__wire.sent.push(typeof data === "string" ? data : { bytes: data.byteLength });
      super.send(data);
    }
  };
  // Delivers one server event (binary values become attachments) as the edge would.
  window.__inject = (event, payload) => {
    const ws = window.__wire.sockets.at(-1);
    const buffers = [];
    const json = JSON.stringify([event, payload], (key, value) => {
      if (value && value.__bytes) {
        buffers.push(new Int16Array(value.__bytes).buffer);
        return { _placeholder: true, num: buffers.length - 1 };
      }
      return value;
    });
    const header = buffers.length ? `45${buffers.length}-/caller,${json}` : `42/caller,${json}`;
    ws.onmessage({ data: header });
    for (const buffer of buffers) ws.onmessage({ data: buffer });
  };
  // 20 ms of a 440 Hz tone, as Int16 samples.
  window.__tone = (amplitude = 0.3) =>
    Array.from({ length: 320 }, (_, i) =>
      Math.round(amplitude * 32767 * Math.sin((2 * Math.PI * 440 * i) / 16000)));
})();
"""

Launch = Callable[..., Awaitable[BrowserContext]]
POLL_S = 0.05


async def wait_until(page: Page, expression: str, arg: Any = None, timeout: float = 30_000) -> None:
    """Waits until `expression` (or the function it names, called with `arg`) is truthy in
    the page. Playwright's own wait_for_function evaluates its predicate with eval, which
    the pages' Content-Security-Policy forbids; `evaluate` goes through the debugger
    protocol, which the policy does not govern, so the pages stay under their real policy."""
    deadline = asyncio.get_running_loop().time() + timeout / 1000
    while not await page.evaluate(expression, arg):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"still false after {timeout:.0f} ms: {expression}")
        await asyncio.sleep(POLL_S)


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    """Starts Chromium with extra arguments; every context is closed after the test."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the page tests: apt-get install chromium")
    async with async_playwright() as playwright:
        contexts: list[BrowserContext] = []

        async def start(*extra: str, permissions: list[str] | None = None) -> BrowserContext:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / f"profile{len(contexts)}"),
                headless=True,
                executable_path=CHROMIUM,
                args=[*ARGS, *extra],
                permissions=permissions or [],
            )
            await context.add_init_script(WIRE_SPY)
            contexts.append(context)
            return context

        try:
            yield start
        finally:
            for context in contexts:
                await context.close()


# Chromium's fake microphone runs at 48 kHz and stretches a 16 kHz file by plain
# interpolation, which dulls consonants no real microphone would; files are resampled
# properly to 48 kHz first, as a real device's capture would be.
DEVICE_RATE = 48_000


def mic_file(path: Path, pcm: bytes) -> Path:
    """A WAV for `--use-file-for-fake-audio-capture` from 16 kHz PCM."""
    write_wav(path, resample(pcm, 16_000, DEVICE_RATE), DEVICE_RATE)
    return path
