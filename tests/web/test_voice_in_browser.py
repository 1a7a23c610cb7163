"""Voice end to end in real headless Chromium: the fake microphone plays speech made with
eSpeak NG, the page streams it, the edge and worker answer aloud, the page plays the reply."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect
from sqlalchemy import func, select

from convonet.call_client import ScriptedCaller
from convonet.db.models import Todo
from convonet.db.session import session_scope
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import silence
from tests.speech_samples import speak
from tests.system import running_system
from tests.web.browser import Launch, mic_file, wait_until
from tests.web.test_caller_page import _logged_in_page

FAKE_MIC = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


async def test_spoken_request_creates_the_todo_and_is_answered_aloud(
    settings: Settings, launch: Launch, tmp_path: Path
) -> None:
    await seed(settings)
    wav = mic_file(
        tmp_path / "milk.wav", silence(500) + speak("create a todo to buy milk") + silence(12_000)
    )
    context = await launch(*FAKE_MIC, f"--use-file-for-fake-audio-capture={wav}")
    async with running_system(settings) as system:
        page = await _logged_in_page(context, system.url)
        await page.click("#mic")
        said = page.locator("#transcript li.user").first
        await expect(said).to_have_text("You create a todo to buy milk", timeout=20_000)
        answer = page.locator("#transcript li.assistant").nth(1)
        await expect(answer).to_contain_text("buy milk")
        await expect(answer.locator("small.latency")).to_contain_text("voice-to-voice")
        await wait_until(page, "window.convonetStats.playbackStoppedAt !== null", timeout=20_000)
        stats = await page.evaluate("window.convonetStats")
        await page.click("#mic")
    async with session_scope(settings.effective_database_url) as session:
        count = await session.scalar(
            select(func.count()).select_from(Todo).where(Todo.title == "buy milk")
        )
    assert count == 1
    assert stats["playedFrames"] > 25, "at least half a second of reply audio was played"
    assert stats["playedPeakRms"] > 0.02, "the reply audio is not silence"


async def test_speaking_over_a_long_reply_stops_playback_at_once(
    settings: Settings, launch: Launch, tmp_path: Path
) -> None:
    await seed(settings)
    speech_at_ms = 5_000
    first = silence(500) + speak("what's on my list")
    barge = speak("what time is it")
    pcm = first + silence(speech_at_ms - len(first) // 32) + barge + silence(15_000)
    wav = mic_file(tmp_path / "barge.wav", pcm)
    context = await launch(*FAKE_MIC, f"--use-file-for-fake-audio-capture={wav}")
    async with running_system(settings) as system:
        helper = ScriptedCaller(system.url)
        await helper.connect()
        await helper.login("1234")
        for title in ("buy milk", "walk the dog", "water the plants", "pay the rent", "call mom"):
            await helper.say(f"add a todo {title}")
        await helper.close()

        page = await _logged_in_page(context, system.url)
        await page.click("#mic")
        await wait_until(page, "window.convonetStats.bargeInAt !== null", timeout=20_000)
        stats = await page.evaluate("window.convonetStats")
        interrupted = page.locator("#transcript li.assistant.interrupted")
        await expect(interrupted).to_have_count(1)
        await page.click("#mic")

    # The mic clock starts with the file, so the barge-in speech began at this page time.
    speech_started = stats["micStartedAt"] + speech_at_ms
    assert stats["playbackStartedAt"] < speech_started, "the reply was playing"
    stopped_after = stats["playbackStoppedAt"] - speech_started
    print(f"\nplayback stopped {stopped_after:.0f} ms after the caller started speaking")
    assert stopped_after < 300
