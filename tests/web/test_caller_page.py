"""The caller page in real headless Chromium.

Against the whole stack: PIN pad login, typed turns, resume after reload and after a network
drop, and the microphone (Chromium's fake capture device playing a generated WAV). Server
voice events (audio_out, transcript, ...) are injected into the page's own WebSocket, so the
playback, barge-in and transcript paths are tested without the server's voice edge. The
Socket.IO binary codec is unit-tested inside the page.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import BrowserContext, Page, expect

from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech.audio import silence
from tests.speech_samples import speak
from tests.system import running_system
from tests.web.browser import MIC_ERROR, WEB_DIR, Launch, mic_file, wait_until


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    """Three seconds of a 440 Hz tone at 16 kHz: what the fake microphone will hear."""
    rate = 16000
    t = np.arange(rate * 3) / rate
    samples = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


@pytest.fixture
def static_site() -> Iterator[str]:
    """web/ over plain HTTP, for in-page unit tests that need no server."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(WEB_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _pad(page: Page, digits: str) -> None:
    for digit in digits:
        await page.click(f"#pinpad button[data-key='{digit}']")


async def _login(page: Page, pin: str) -> None:
    await _pad(page, pin)
    await page.click("#login-submit")


async def _stat(page: Page, name: str) -> object:
    return await page.evaluate(f"window.convonetStats.{name}")


async def _sent(page: Page) -> list[object]:
    return await page.evaluate("window.__wire.sent")


def _events(sent: list[object], name: str) -> list[dict[str, object]]:
    """Payloads of the text packets the page sent for one event."""
    found = []
    for message in sent:
        if isinstance(message, str) and f'["{name}",' in message:
            found.append(json.loads(message[message.index("[") :])[1])
    return found


async def _logged_in_page(context: BrowserContext, url: str) -> Page:
    page = await context.new_page()
    await page.goto(url + "/")
    await expect(page.locator("#status")).to_have_text("Enter your PIN to start.")
    await _login(page, "1234")
    await expect(page.locator("#transcript li").first).to_contain_text("Hi Alice")
    return page


# ---- against the whole stack ------------------------------------------------------------


async def test_caller_logs_in_talks_and_resumes(settings: Settings, launch: Launch) -> None:
    await seed(settings)
    context = await launch()
    async with running_system(settings) as system:
        page = await context.new_page()
        await page.goto(system.url + "/")
        await expect(page.locator("#status")).to_have_text("Enter your PIN to start.")

        # Keyboard entry still works; a wrong PIN says so and how many tries are left.
        await page.fill("#pin", "9999")
        await page.click("#login-submit")
        await expect(page.locator("#error")).to_have_text("That PIN is not right.")
        await expect(page.locator("#attempts")).to_contain_text("left")

        await _login(page, "1234")
        transcript = page.locator("#transcript li")
        await expect(transcript.first).to_contain_text("Hi Alice, how can I help?")
        await expect(page.locator("#error")).to_be_hidden()

        await page.fill("#text", "add a todo <img src=x onerror=alert(1)> test")
        await page.click("#say button[type=submit]")
        await expect(transcript.nth(2)).to_contain_text("Added")
        await expect(transcript.nth(2).locator("small.latency")).to_contain_text("ms")
        # Stored text comes back as text, never as markup.
        assert await page.locator("#transcript img").count() == 0

        await page.reload()
        await expect(page.locator("#status")).to_contain_text("as Alice Martin")
        await page.fill("#text", "what are my todos")
        await page.click("#say button[type=submit]")
        await expect(page.locator("#transcript li").nth(1)).to_contain_text("1 open todo")

        await page.click("#hangup")
        await expect(page.locator("#status")).to_contain_text("The call has ended")
        await expect(page.locator("#restart")).to_be_visible()
        await page.click("#restart")
        await expect(page.locator("#status")).to_have_text("Enter your PIN to start.")


async def test_pin_pad_enters_digits_and_logs_in(settings: Settings, launch: Launch) -> None:
    await seed(settings)
    context = await launch()
    async with running_system(settings) as system:
        page = await context.new_page()
        await page.goto(system.url + "/")
        await expect(page.locator("#login")).to_be_visible()
        pin = page.locator("#pin")
        assert await pin.get_attribute("type") == "password"  # the display is masked

        await _pad(page, "129")
        await expect(pin).to_have_value("129")
        await page.click("#pin-back")
        await expect(pin).to_have_value("12")
        await page.click("#pin-clear")
        await expect(pin).to_have_value("")
        await _pad(page, "123456789")  # at most 8 digits
        await expect(pin).to_have_value("12345678")
        await page.click("#pin-clear")

        await _login(page, "1234")
        await expect(page.locator("#transcript li").first).to_contain_text("Hi Alice")
        await expect(page.locator("#login")).to_be_hidden()
        await expect(page.locator("#conversation")).to_be_visible()
        # A typed turn asks for a spoken reply (the edge may not speak yet; the text comes).
        await page.fill("#text", "what are my todos")
        await page.click("#say button[type=submit]")
        await expect(page.locator("#transcript li").nth(2)).to_contain_text("todo")
        assert _events(await _sent(page), "text_turn")[0] == {
            "text": "what are my todos",
            "speak": True,
        }


async def test_network_drop_resumes_the_same_conversation(
    settings: Settings, launch: Launch
) -> None:
    await seed(settings)
    context = await launch()
    async with running_system(settings) as system:
        page = await _logged_in_page(context, system.url)
        before = await page.evaluate("JSON.parse(sessionStorage.getItem('convonet.session'))")

        await page.evaluate("window.__wire.sockets.at(-1).close()")  # the network drops
        await wait_until(page, "window.__wire.sockets.length === 2")
        await expect(page.locator("#status")).to_contain_text("as Alice Martin")
        after = await page.evaluate("JSON.parse(sessionStorage.getItem('convonet.session'))")
        assert after == before
        await page.fill("#text", "add a todo water the plants")
        await page.click("#say button[type=submit]")
        await expect(page.locator("#transcript li").nth(2)).to_contain_text("Added")

    # The server is gone: the page says so and keeps retrying.
    await expect(page.locator("#error")).to_have_text("Can't reach Convonet. Retrying…")
    await wait_until(page, "window.__wire.sockets.length >= 4", timeout=10_000)


async def test_microphone_streams_frames_and_moves_the_level(
    settings: Settings, launch: Launch, tone_wav: Path
) -> None:
    await seed(settings)
    context = await launch(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={tone_wav}",
    )
    async with running_system(settings) as system:
        page = await _logged_in_page(context, system.url)
        assert await _stat(page, "micFrames") == 0

        await page.click("#mic")
        await expect(page.locator("#mic")).to_have_attribute("aria-pressed", "true")
        await wait_until(page, "window.convonetStats.micFrames > 25")
        await wait_until(page, "document.getElementById('level').value > 0")
        assert await _stat(page, "micStartedAt") is not None
        # 50 frames a second, give or take the start.
        frames = await _stat(page, "micFrames")
        await page.wait_for_timeout(1000)
        assert 35 <= await _stat(page, "micFrames") - frames <= 65  # type: ignore[operator]

        # On the wire: `mic` opened hands-free, then binary audio_frame packets of 640 bytes.
        await wait_until(page, "window.convonetStats.framesSent > 5", timeout=10_000)
        sent = await _sent(page)
        assert _events(sent, "mic")[0] == {"open": True, "mode": "hands_free"}
        first = next(i for i, m in enumerate(sent) if isinstance(m, str) and "audio_frame" in m)
        assert sent[first] == (
            '451-/caller,["audio_frame",{"seq":0,"rate":16000,"pcm":{"_placeholder":true,"num":0}}]'
        )
        assert sent[first + 1] == {"bytes": 640}
        seqs = [
            json.loads(m[m.index("[") :])[1]["seq"]
            for m in sent
            if isinstance(m, str) and "audio_frame" in m
        ]
        assert seqs == list(range(len(seqs)))

        # Off again: the microphone stops and `mic` closes.
        await page.click("#mic")
        await expect(page.locator("#mic")).to_have_attribute("aria-pressed", "false")
        await wait_until(
            page,
            "window.__wire.sent.some(m => typeof m === 'string' && m.includes('\"open\":false'))",
        )
        frames = await _stat(page, "micFrames")
        await page.wait_for_timeout(300)
        assert await _stat(page, "micFrames") == frames

        # Push-to-talk: `mic` opens while the button is held and closes on release.
        ptt = page.locator("#ptt")
        await ptt.hover()
        await page.mouse.down()
        await expect(page.locator("#stage")).to_have_text("Listening…")
        await wait_until(
            page,
            "window.__wire.sent.some(m => typeof m === 'string' && m.includes('push_to_talk'))",
        )
        await page.mouse.up()
        await wait_until(
            page,
            "window.__wire.sent.filter(m => typeof m === 'string'"
            " && m.includes('\"open\":false')).length >= 2",
            timeout=10_000,
        )
        mic_events = _events(await _sent(page), "mic")
        assert mic_events[-2:] == [{"open": True, "mode": "push_to_talk"}, {"open": False}]


async def test_refused_microphone_says_so(settings: Settings, launch: Launch) -> None:
    await seed(settings)
    context = await launch("--deny-permission-prompts", "--use-fake-device-for-media-stream")
    async with running_system(settings) as system:
        page = await _logged_in_page(context, system.url)
        await page.click("#mic")
        await expect(page.locator("#error")).to_have_text(MIC_ERROR)
        await expect(page.locator("#mic")).to_have_attribute("aria-pressed", "false")
        assert await _stat(page, "micFrames") == 0
        # The typed box is still there as the fallback.
        await expect(page.locator("#text")).to_be_visible()


async def test_voice_events_play_reply_audio_and_fill_the_transcript(
    settings: Settings, launch: Launch
) -> None:
    """Server voice events, injected: transcript, streamed reply, audio, timings, stages."""
    await seed(settings)
    context = await launch()
    async with running_system(settings) as system:
        page = await _logged_in_page(context, system.url)
        key = "u0123456789ab"
        user = page.locator("#transcript li.user").last
        assistant = page.locator("#transcript li.assistant").last

        await page.evaluate(f"__inject('speech', {{turn_key: '{key}', event: 'start'}})")
        await expect(page.locator("#stage")).to_have_text("Listening…")
        await page.evaluate(
            f"__inject('transcript', {{turn_key: '{key}', text: 'add a', final: false}})"
        )
        await expect(user).to_have_class("user interim")
        await expect(user).to_contain_text("add a")
        await page.evaluate(
            f"__inject('transcript', {{turn_key: '{key}', text: 'add a <b>todo</b>', final: true}})"
        )
        await expect(user).to_have_class("user")
        await expect(user).to_contain_text("add a <b>todo</b>")
        await page.evaluate(f"__inject('stage', {{turn_key: '{key}', stage: 'thinking'}})")
        await expect(page.locator("#stage")).to_have_text("Thinking…")

        for delta in ["Added ", "<i>it</i>", "."]:
            await page.evaluate(
                f"__inject('reply_text', {{turn_key: '{key}', text: {json.dumps(delta)}}})"
            )
        await expect(assistant).to_contain_text("Added <i>it</i>.")
        assert await page.locator("#transcript b, #transcript i").count() == 0

        # One second of reply audio, then audio_done: played gaplessly to the end.
        await page.evaluate(
            f"""for (let seq = 0; seq < 50; seq++)
                  __inject('audio_out', {{turn_key: '{key}', seq, rate: 16000,
                                          pcm: {{__bytes: __tone(0.3)}}}});"""
        )
        await page.evaluate(f"__inject('audio_done', {{turn_key: '{key}', interrupted: false}})")
        await wait_until(page, "window.convonetStats.playbackStoppedAt !== null")
        stats = await page.evaluate("window.convonetStats")
        assert stats["playedFrames"] == 50
        assert 0.15 < stats["playedPeakRms"] < 0.25  # 0.3 / sqrt(2)
        played_ms = stats["playbackStoppedAt"] - stats["playbackStartedAt"]
        assert 900 <= played_ms <= 1400, played_ms
        assert stats["lastTurnKey"] == key
        await expect(page.locator("#stage")).to_have_text("Idle")

        await page.evaluate(
            f"""__inject('reply', {{turn_key: '{key}', turn: 1, user: 'add a <b>todo</b>',
                 assistant: 'Added <i>it</i>.', tool_calls: [], state: 'active',
                 transfer: null, latency_ms: 900}});
                __inject('timings', {{turn_key: '{key}', end_of_speech_ms: 200,
                 stt_final_ms: 60, llm_first_token_ms: 100, tts_first_audio_ms: 52,
                 voice_to_voice_ms: 412}});"""
        )
        await expect(assistant.locator("small.latency")).to_have_text("voice-to-voice 412 ms")
        assert await page.locator("#transcript li").count() == 3  # greeting, user, assistant


async def test_speaking_over_the_reply_barges_in(
    settings: Settings, launch: Launch, tone_wav: Path
) -> None:
    await seed(settings)
    context = await launch(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={tone_wav}",
    )
    async with running_system(settings) as system:
        page = await _logged_in_page(context, system.url)
        key = "u00000000beef"
        # Reply audio queued (5 s), the caller then starts talking (the WAV tone) hands-free.
        await page.evaluate(f"__inject('reply_text', {{turn_key: '{key}', text: 'A long reply'}})")
        await page.evaluate(
            f"""for (let seq = 0; seq < 250; seq++)
                  __inject('audio_out', {{turn_key: '{key}', seq, rate: 16000,
                                          pcm: {{__bytes: __tone(0.3)}}}});"""
        )
        await wait_until(page, "window.convonetStats.playbackStartedAt !== null")
        await page.click("#mic")
        await wait_until(page, "window.convonetStats.bargeInAt !== null", timeout=5_000)
        stats = await page.evaluate("window.convonetStats")
        assert stats["playbackStoppedAt"] is not None
        assert stats["playedFrames"] < 250
        barge = [b for b in _events(await _sent(page), "barge_in") if b["turn_key"] == key]
        assert len(barge) == 1
        assert 0 < barge[0]["played_ms"] <= 5000  # type: ignore[operator]
        await expect(page.locator("#transcript li.assistant").last).to_have_class(
            "assistant streaming interrupted"
        )

        # Later frames of that reply are dropped.
        played = stats["playedFrames"]
        await page.evaluate(
            f"""for (let seq = 250; seq < 260; seq++)
                  __inject('audio_out', {{turn_key: '{key}', seq, rate: 16000,
                                          pcm: {{__bytes: __tone(0.3)}}}});"""
        )
        await page.wait_for_timeout(400)
        assert await _stat(page, "playedFrames") == played


async def test_voice_round_trip_through_the_edge(
    settings: Settings, launch: Launch, tmp_path: Path
) -> None:
    """The real voice path: a spoken typed reply, then a hands-free utterance (eSpeak)."""
    await seed(settings)
    wav = mic_file(
        tmp_path / "todos.wav", silence(500) + speak("what's on my list") + silence(8000)
    )
    context = await launch(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    )
    async with running_system(settings) as system:
        page = await _logged_in_page(context, system.url)
        transcript = page.locator("#transcript li")

        # A typed turn is answered in text and spoken.
        await page.fill("#text", "what are my todos")
        await page.click("#say button[type=submit]")
        await expect(transcript.nth(2)).to_contain_text("todo")
        await wait_until(page, "window.convonetStats.playbackStoppedAt !== null")
        typed = await page.evaluate("window.convonetStats")
        assert typed["playedFrames"] > 10 and typed["playedPeakRms"] > 0.01
        assert typed["lastTurnKey"].startswith("t")

        # Hands-free: the edge hears the utterance, transcribes it, answers and speaks.
        await page.click("#mic")
        await expect(transcript.nth(3)).to_have_class("user", timeout=20_000)
        await expect(transcript.nth(3)).to_have_text("You what's on my list")
        await expect(transcript.nth(4).locator("small.latency")).to_contain_text(
            "voice-to-voice", timeout=20_000
        )
        await wait_until(
            page,
            "window.convonetStats.playedFrames > "
            f"{typed['playedFrames']} && window.convonetStats.lastTurnKey.startsWith('u')",
        )
        assert await transcript.count() == 5


# ---- in-page unit tests (no server) -----------------------------------------------------


async def test_socket_binary_codec(static_site: str, launch: Launch) -> None:
    context = await launch()
    page = await context.new_page()
    await page.goto(static_site + "/")
    result = await page.evaluate(
        """async () => {
          const { CallerSocket, encodeEvent } = await import("/socket.js");
          const out = {};

          // Encoding: placeholders in the header, the attachments after it, in order.
          const pcm = new Int16Array([1, -2, 3]);
          const messages = encodeEvent("/caller", "audio_frame",
            { seq: 7, parts: [new Uint8Array([9, 8]), pcm.buffer] });
          out.header = messages[0];
          out.attachments = messages.slice(1).map((m) => Array.from(new Uint8Array(
            m.buffer ?? m, m.byteOffset ?? 0, m.byteLength)));
          out.plain = encodeEvent("/caller", "mic", { open: true }, 12);
          out.binaryAck = encodeEvent("/caller", "x", { b: new Uint8Array([1]) }, 3)[0];

          // Sending through a socket: emit (no ack) and call (ack id) on a fake transport.
          const sent = [];
          const handlers = {};
          const socket = new CallerSocket("/caller", {}, handlers);
          socket.ws = { readyState: 1, send: (m) => sent.push(m), close: () => socket.closed() };
          out.emitted = socket.emit("audio_frame", { seq: 0, pcm: new Uint8Array(640) });
          out.sent = sent.map((m) => (typeof m === "string" ? m : m.byteLength));
          const acked = socket.call("mic", { open: true });
          socket.receive('43/caller,1[{"ok":true,"data":{"open":true}}]');
          out.ack = await acked;
          out.timedOut = await socket.call("mic", {}, 50).then(() => "answered", (e) => e.message);

          // Decoding: a type-5 header, then its attachments, then dispatch.
          const got = [];
          handlers.audio_out = (payload) => got.push(payload);
          socket.receive('452-/caller,["audio_out",{"turn_key":"u1","seq":4,' +
            '"pcm":{"_placeholder":true,"num":0},"more":[{"_placeholder":true,"num":1}]}]');
          out.beforeAttachments = got.length;
          socket.receive(new Int16Array([100, -100]).buffer);
          out.afterOne = got.length;
          socket.receive(new Uint8Array([7]).buffer);
          out.decoded = got.map((p) => ({
            turn_key: p.turn_key, seq: p.seq,
            pcm: Array.from(new Int16Array(p.pcm)), more: Array.from(new Uint8Array(p.more[0])),
          }));
          socket.receive('42/caller,["status",{"state":"active"}]');
          handlers.status = (s) => (out.status = s.state);
          socket.receive('42/caller,["status",{"state":"active"}]');
          socket.receive('42/caller,["constructor",{}]');  // not a handler: ignored

          // "41": the server disconnected the namespace.
          let disconnected = 0;
          handlers.disconnected = () => (disconnected += 1);
          socket.receive("41/caller,");
          out.disconnected = disconnected;
          return out;
        }"""
    )
    assert result["header"] == (
        '452-/caller,["audio_frame",{"seq":7,"parts":[{"_placeholder":true,"num":0},'
        '{"_placeholder":true,"num":1}]}]'
    )
    assert result["attachments"] == [[9, 8], [1, 0, 254, 255, 3, 0]]  # Int16 little-endian
    assert result["plain"] == ['42/caller,12["mic",{"open":true}]']
    assert result["binaryAck"] == '451-/caller,3["x",{"b":{"_placeholder":true,"num":0}}]'
    assert result["emitted"] is True
    assert result["sent"] == [
        '451-/caller,["audio_frame",{"seq":0,"pcm":{"_placeholder":true,"num":0}}]',
        640,
    ]
    assert result["ack"] == {"ok": True, "data": {"open": True}}
    assert result["timedOut"] == "no answer"
    assert result["beforeAttachments"] == 0 and result["afterOne"] == 0
    assert result["decoded"] == [{"turn_key": "u1", "seq": 4, "pcm": [100, -100], "more": [7]}]
    assert result["status"] == "active"
    assert result["disconnected"] == 1


async def test_playback_worklet_plays_back_to_back(static_site: str, launch: Launch) -> None:
    context = await launch()
    page = await context.new_page()
    await page.goto(static_site + "/")
    result = await page.evaluate(
        """async () => {
          const context = new AudioContext({ sampleRate: 16000 });
          await context.audioWorklet.addModule("/audio/playback-worklet.js");
          const node = new AudioWorkletNode(context, "convonet-playback",
            { numberOfInputs: 0, outputChannelCount: [1] });
          node.connect(context.destination);
          const messages = [];
          const drained = new Promise((resolve) => {
            node.port.onmessage = ({ data }) => {
              messages.push(data);
              if (data.type === "drained") resolve();
            };
          });
          await context.resume();
          for (let seq = 0; seq < 10; seq++) {
            const pcm = new Int16Array(320).fill(seq % 2 ? 8000 : -8000);
            node.port.postMessage({ type: "push", turnKey: "t1", pcm: pcm.buffer, rate: 16000 },
              [pcm.buffer]);
          }
          node.port.postMessage({ type: "end", turnKey: "t1" });
          await drained;
          await context.close();
          return messages;
        }"""
    )
    types = [m["type"] for m in result]
    assert types[0] == "started" and types[-1] == "drained"
    # One "drained" only: no gap (an empty queue) between the frames.
    assert types.count("drained") == 1 and types.count("started") == 1
    assert result[-1]["turnSamples"] == 3200
    progress = [m for m in result if m["type"] == "progress"]
    assert progress[-1]["framesPlayed"] == 10
    assert abs(progress[-1]["peakRms"] - 8000 / 32768) < 0.01
