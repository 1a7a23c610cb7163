"""A transfer to a human agent, end to end in two real headless Chromium pages.

The caller page's fake microphone asks for an agent (eSpeak NG, recognised by pocketsphinx);
the agent dashboard rings with the warm hand-off; the agent answers, and each page then hears
the other's fake microphone through the bridge. The agent hangs up, saves the outcome, the
assistant takes the caller back, and the call record holds every step."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select

from convonet.db.models import CallRecord
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import SAMPLE_RATE, resample, silence
from tests.speech_samples import speak
from tests.system import running_system
from tests.web.browser import DEVICE_RATE, Launch, mic_file, wait_until
from tests.web.test_caller_page import _logged_in_page

# The caller page's counters, without its (large) sample buffer.
CALLER_STATS = "(({bridgeHeard, takeBridgeHeard, ...rest}) => rest)(window.convonetStats)"
FAKE_MIC = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
CALLER_SAYS = "transfer me to an agent"
AGENT_SAYS = "hello this is dana from support how can I help you today"
LISTEN_S = 3.0  # how much of each side's audio is compared
SEGMENT_S = 1.0  # correlation windows: a dropped frame only misaligns the window it is in
MIN_CORRELATION = 0.5
SILENCE_RMS = 30.0  # int16; Chromium's fake silence is digital zero


def _mic_loop(pcm: bytes) -> np.ndarray:
    """One period of what a fake microphone plays, as the page captures it at 16 kHz: the
    48 kHz file Chromium loops, brought back to 16 kHz."""
    device = resample(pcm, SAMPLE_RATE, DEVICE_RATE)
    back = resample(device, DEVICE_RATE, SAMPLE_RATE)
    return np.frombuffer(back, dtype="<i2").astype(np.float64)


def _peak_correlation(received: np.ndarray, loop: np.ndarray) -> float:
    """The highest normalised cross-correlation of `received` against the looping `loop`,
    over every lag of one period (FFT-based)."""
    period = len(loop)
    reference = np.tile(loop, int(np.ceil((len(received) + period) / period)) + 1)
    reference = reference[: len(received) + period]
    size = 1 << int(np.ceil(np.log2(len(reference) + len(received))))
    spectrum = np.fft.rfft(reference, size) * np.conj(np.fft.rfft(received, size))
    dots = np.fft.irfft(spectrum, size)[: period + 1]  # dot product at each lag
    squares = np.concatenate(([0.0], np.cumsum(reference * reference)))
    window = squares[len(received) : len(received) + period + 1] - squares[: period + 1]
    norms = np.sqrt(np.maximum(window, 1e-9)) * np.linalg.norm(received)
    return float(np.max(dots / np.maximum(norms, 1e-9)))


def _measure(name: str, received: np.ndarray, loop: np.ndarray) -> tuple[float, float]:
    """RMS of what a page received, and how well it matches the other side's microphone: the
    median, over 1 s windows that hold speech, of each window's correlation peak (a frame
    dropped on the way shifts what follows, so one long window would understate it)."""
    level = float(np.sqrt(np.mean(received * received))) if len(received) else 0.0
    segment = int(SEGMENT_S * SAMPLE_RATE)
    peaks = []
    for start in range(0, len(received) - segment + 1, segment // 2):
        chunk = received[start : start + segment]
        if np.sqrt(np.mean(chunk * chunk)) > 10 * SILENCE_RMS:
            peaks.append(_peak_correlation(chunk, loop))
    median = float(np.median(peaks)) if peaks else 0.0
    print(
        f"\n{name}: {len(received) / SAMPLE_RATE:.2f} s received, RMS {level:.0f}, "
        f"correlation peaks per {SEGMENT_S:.0f} s window {[round(p, 2) for p in peaks]}, "
        f"median {median:.2f}"
    )
    return level, median


# Hands a page's received samples over as base64 Int16: a plain array of a few hundred
# thousand numbers takes Playwright seconds to serialise.
TAKE_AS_BASE64 = """(take) => {
  const bytes = new Uint8Array(Int16Array.from(take()).buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}"""


async def _take(page: Page, buffer: str, take: str, seconds: float) -> np.ndarray:
    """`seconds` of received audio, once that much has arrived (`take` empties `buffer`)."""
    await wait_until(page, f"{buffer}.length >= {int(seconds * SAMPLE_RATE)}", timeout=15_000)
    encoded: str = await page.evaluate(f"({TAKE_AS_BASE64})(() => {take}())")
    return np.frombuffer(base64.b64decode(encoded), dtype="<i2").astype(np.float64)


async def _agent_ready(context: BrowserContext, url: str) -> Page:
    """Dana's dashboard, logged in with the built-in phone, ready for calls."""
    agent = await context.new_page()
    await agent.goto(url + "/agent/")
    await agent.fill("#agent-login", "dana")
    await agent.fill("#agent-password", "agent-demo-2001")
    await agent.click("#agent-login-button")
    await wait_until(
        agent,
        "(h => h.mode === 'builtin' && h.state === 'ready' && h.phone === 'connected')"
        "(window.convonetAgent)",
        timeout=15_000,
    )
    return agent


async def _ringing(agent: Page) -> None:
    await wait_until(agent, "window.convonetAgent.call?.state === 'ringing'", timeout=20_000)


async def _bridged(agent: Page, caller: Page) -> None:
    await wait_until(agent, "window.convonetAgent.call?.state === 'bridged'", timeout=15_000)
    await wait_until(caller, "window.convonetStats.transferState === 'bridged'", timeout=15_000)


async def _type(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#say button[type=submit]")


async def test_caller_is_put_through_to_the_agent_and_both_hear_each_other(
    settings: Settings, launch: Launch, tmp_path: Path
) -> None:
    started = time.monotonic()
    await seed(settings)
    caller_pcm = silence(300) + speak(CALLER_SAYS) + silence(1500)
    agent_pcm = speak(AGENT_SAYS) + silence(500)
    caller_wav = mic_file(tmp_path / "caller.wav", caller_pcm)
    agent_wav = mic_file(tmp_path / "agent.wav", agent_pcm)
    agent_context = await launch(*FAKE_MIC, f"--use-file-for-fake-audio-capture={agent_wav}")
    caller_context = await launch(*FAKE_MIC, f"--use-file-for-fake-audio-capture={caller_wav}")

    async with running_system(settings) as system:
        agent = await _agent_ready(agent_context, system.url)

        # The caller logs in and asks for a person out loud.
        caller = await _logged_in_page(caller_context, system.url)
        session: dict[str, Any] = await caller.evaluate(
            "JSON.parse(sessionStorage.getItem('convonet.session'))"
        )
        await caller.click("#mic")
        status = caller.locator("#transfer-status")
        await wait_until(caller, "window.convonetStats.transferState !== null", timeout=30_000)
        await expect(status).to_have_attribute("role", "status")
        await expect(status).to_have_attribute("aria-live", "polite")

        # The dashboard rings with the warm hand-off.
        await _ringing(agent)
        popup = agent.locator("#call-popup")
        await expect(popup).to_be_visible()
        await expect(popup.locator("[data-field=caller-name]")).to_have_text("Alice Martin")
        department = (await popup.locator("[data-field=department]").inner_text()).strip()
        assert department and department != "—"
        await expect(popup.locator("[data-field=teams] li")).to_have_text(["Demo Team"])
        await expect(popup.locator("[data-field=summary]")).to_contain_text(
            f"Alice Martin asked the assistant to be put through to {department}"
        )
        await expect(status).to_have_text("Ringing Dana Agent…", timeout=10_000)
        await expect(status).to_have_attribute("data-state", "ringing")

        await agent.click("#answer")
        await _bridged(agent, caller)
        await expect(status).to_have_text("Connected with Dana Agent")
        await expect(status).to_have_attribute("data-state", "bridged")
        await expect(caller.locator("#transfer-timer")).to_have_text(
            re.compile(r"^0:0[1-9]$"), timeout=5_000
        )
        await expect(caller.locator("#stage")).to_have_text("Talking with Dana Agent")
        await expect(caller.locator("#mic")).to_have_attribute("aria-pressed", "true")

        barge_in_at = await caller.evaluate("window.convonetStats.bargeInAt")

        # Each side hears the other's microphone: what arrived before now is dropped, as it
        # may hold the first frames of the bridge.
        await agent.evaluate("window.convonetAgent.takeHeard().length")
        await caller.evaluate("window.convonetStats.takeBridgeHeard().length")
        agent_heard = await _take(
            agent, "window.convonetAgent.heard", "window.convonetAgent.takeHeard", LISTEN_S
        )
        caller_heard = await _take(
            caller,
            "window.convonetStats.bridgeHeard",
            "window.convonetStats.takeBridgeHeard",
            LISTEN_S,
        )
        caller_stats: dict[str, Any] = await caller.evaluate(CALLER_STATS)
        agent_stats: dict[str, Any] = await agent.evaluate("window.convonetAgent.stats")
        print(
            f"\ncaller page: {caller_stats['bridgeFramesIn']} frames in, "
            f"{caller_stats['bridgeFramesOut']} out; agent page: {agent_stats['framesIn']} in, "
            f"{agent_stats['framesOut']} out"
        )
        agent_rms, agent_corr = _measure(
            "agent heard the caller", agent_heard, _mic_loop(caller_pcm)
        )
        caller_rms, caller_corr = _measure(
            "caller heard the agent", caller_heard, _mic_loop(agent_pcm)
        )
        assert agent_rms > 10 * SILENCE_RMS and caller_rms > 10 * SILENCE_RMS
        assert agent_corr > MIN_CORRELATION, "the agent hears the caller's microphone"
        assert caller_corr > MIN_CORRELATION, "the caller hears the agent's microphone"
        assert caller_stats["bridgeFramesOut"] > 100 and agent_stats["framesOut"] > 100
        assert caller_stats["bargeInAt"] == barge_in_at, "talking over the agent is no barge-in"

        # The caller goes quiet (the looping file would ask for an agent again), the agent
        # hangs up and records the outcome.
        await caller.click("#mic")
        await expect(caller.locator("#mic")).to_have_attribute("aria-pressed", "false")
        played_before = caller_stats["playedFrames"]
        await agent.click("#hang-up")
        form = agent.locator("#disposition-form")
        await expect(form).to_be_visible(timeout=10_000)
        await agent.select_option("#disposition", "follow-up")
        await agent.fill("#notes", "Sent the price list; call back on Monday.")
        await agent.click("#save-disposition")
        await expect(agent.locator("#disposition-saved")).to_be_visible(timeout=10_000)
        await wait_until(agent, "window.convonetAgent.state === 'ready'")

        # The caller is back with the assistant, which says so aloud.
        await expect(status).to_have_text("Call with Dana Agent ended", timeout=10_000)
        await expect(status).to_have_attribute("data-state", "ended")
        said = caller.locator(
            "#transcript li.assistant", has_text="Your call with Dana Agent has ended"
        )
        await expect(said).to_have_count(1, timeout=15_000)
        await expect(caller.locator("#status")).to_have_text(
            "Talking with the assistant as Alice Martin."
        )
        await wait_until(
            caller, f"window.convonetStats.playedFrames > {played_before + 25}", timeout=15_000
        )
        await expect(caller.locator("#stage")).not_to_have_text("Talking with Dana Agent")

    async with session_scope(settings.effective_database_url) as db:
        record = await db.scalar(
            select(CallRecord).where(CallRecord.conversation_id == session["conversation_id"])
        )
    assert record is not None
    stamps = {
        "requested_at": record.requested_at,
        "dialing_at": record.dialing_at,
        "ringing_at": record.ringing_at,
        "answered_at": record.answered_at,
        "bridged_at": record.bridged_at,
        "ended_at": record.ended_at,
        "dispositioned_at": record.dispositioned_at,
    }
    assert all(stamps.values()), stamps
    assert record.disposition == "follow-up"
    assert record.notes == "Sent the price list; call back on Monday."
    print(
        f"\nagent heard the caller: RMS {agent_rms:.0f}, correlation {agent_corr:.2f}; "
        f"caller heard the agent: RMS {caller_rms:.0f}, correlation {caller_corr:.2f}; "
        f"test took {time.monotonic() - started:.1f} s"
    )


async def test_declined_then_answered_with_the_microphone_opened_for_the_call(
    settings: Settings, launch: Launch, tmp_path: Path
) -> None:
    """A typed request: a declined call says why in plain words; on the next try the page
    opens the microphone for the call by itself, shows the hold, refuses typed turns with
    the server's reason, and closes the microphone again when the agent hangs up."""
    await seed(settings)
    agent_wav = mic_file(tmp_path / "agent.wav", speak(AGENT_SAYS) + silence(500))
    quiet_wav = mic_file(tmp_path / "quiet.wav", silence(2000))
    agent_context = await launch(*FAKE_MIC, f"--use-file-for-fake-audio-capture={agent_wav}")
    caller_context = await launch(*FAKE_MIC, f"--use-file-for-fake-audio-capture={quiet_wav}")
    async with running_system(settings) as system:
        agent = await _agent_ready(agent_context, system.url)
        caller = await _logged_in_page(caller_context, system.url)
        status = caller.locator("#transfer-status")
        mic = caller.locator("#mic")
        assistant = caller.locator("#transcript li.assistant")
        await expect(caller.locator("#transfer")).to_be_hidden()

        await _type(caller, "transfer me to sales")
        await _ringing(agent)
        await expect(status).to_have_text("Ringing Dana Agent…", timeout=10_000)
        await agent.click("#decline")
        await expect(status).to_have_text(
            "Couldn't reach sales: the call was declined", timeout=10_000
        )
        await expect(status).to_have_attribute("data-state", "failed")
        await expect(assistant.filter(has_text="couldn't take your call")).to_have_count(
            1, timeout=15_000
        )
        await expect(caller.locator("#status")).to_have_text(
            "Talking with the assistant as Alice Martin."
        )

        await _type(caller, "try again")
        await expect(status).to_have_text(
            re.compile(r"^(Finding|Calling|Ringing) "), timeout=10_000
        )
        await _ringing(agent)
        await expect(mic).to_have_attribute("aria-pressed", "false")
        await agent.click("#answer")
        await _bridged(agent, caller)
        # The microphone was off: it opens hands-free for the call, and streams to the agent.
        await expect(mic).to_have_attribute("aria-pressed", "true")
        await expect(caller.locator("#stage")).to_have_text("Talking with Dana Agent")
        await wait_until(caller, "window.convonetStats.bridgeFramesOut > 25", timeout=10_000)
        await wait_until(agent, "window.convonetAgent.stats.framesIn > 25")

        await _type(caller, "what are my todos")
        await expect(caller.locator("#error")).to_have_text(
            "You're connected with Dana Agent; the assistant is paused.", timeout=10_000
        )

        await agent.click("#hold")
        await expect(status).to_have_text("On hold", timeout=10_000)
        await expect(status).to_have_attribute("data-hold", "true")
        await expect(caller.locator("#stage")).to_have_text("On hold")
        await agent.click("#hold")
        await expect(status).to_have_text("Connected with Dana Agent", timeout=10_000)
        await expect(caller.locator("#stage")).to_have_text("Talking with Dana Agent")

        # Hanging up right after a hold change.
        await agent.click("#hang-up")
        await expect(status).to_have_text("Call with Dana Agent ended", timeout=10_000)
        await expect(mic).to_have_attribute("aria-pressed", "false")
        await expect(
            assistant.filter(has_text="Your call with Dana Agent has ended")
        ).to_have_count(1, timeout=15_000)
        await expect(caller.locator("#stage")).not_to_have_text("Talking with Dana Agent")
        await expect(caller.locator("#error")).to_be_hidden()  # the refusal went with the call
        stats = await caller.evaluate(CALLER_STATS)
        assert stats["transferState"] == "ended"
