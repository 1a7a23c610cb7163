"""`convonet call`: a scripted caller using the same Socket.IO interface as the browser."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import socketio

from api.protocol import NAMESPACE
from convonet.speech.audio import FRAME_MS, SAMPLE_RATE, duration_ms, frames, read_wav, silence

TIMEOUT_S = 60
# Silence sent after an utterance so the edge's end-of-speech detection can fire.
TRAILING_SILENCE_MS = 1500
VOICE_EVENTS = ("speech", "stage", "transcript", "reply_text", "reply", "audio_done", "timings")
# A transfer's progress, and what the assistant says on its own afterwards.
TRANSFER_EVENTS = ("transfer", "assistant")


class CallFailed(Exception):
    pass


class EventLog:
    """Socket events by name, in arrival order, that a script can wait for."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._arrived = asyncio.Condition()

    def recorder(self, name: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def record(data: dict[str, Any]) -> None:
            async with self._arrived:
                self.events[name].append(data)
                self._arrived.notify_all()

        return record

    async def wait_for(
        self,
        name: str,
        timeout: float = TIMEOUT_S,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
        **match: Any,
    ) -> dict[str, Any]:
        """The first `name` event whose fields equal `match` (and that `where` accepts),
        waiting for it to arrive."""

        def found() -> dict[str, Any] | None:
            for event in self.events[name]:
                if all(event.get(k) == v for k, v in match.items()) and where(event):
                    return event
            return None

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
        event = found()
        assert event is not None
        return event


class ScriptedCaller:
    """Connects, logs in and sends text turns; every reply comes from the event's ack."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.statuses: list[dict[str, Any]] = []
        self._connected = asyncio.Event()
        self.sio.on("status", self._on_status, namespace=NAMESPACE)
        # Voice events by name, in arrival order, and reply audio bytes by turn key.
        self.log = EventLog()
        self.events = self.log.events
        self.audio: dict[str, bytearray] = defaultdict(bytearray)
        # The human agent's voice while the call is bridged to them.
        self.bridge_audio = bytearray()
        self.mic_open = False
        self._seq = 0
        for name in (*VOICE_EVENTS, *TRANSFER_EVENTS, "error"):
            self.sio.on(name, self.log.recorder(name), namespace=NAMESPACE)
        self.sio.on("audio_out", self._on_audio, namespace=NAMESPACE)
        self.sio.on("bridge_audio", self._on_bridge_audio, namespace=NAMESPACE)

    async def _on_audio(self, data: dict[str, Any]) -> None:
        self.audio[str(data.get("turn_key"))] += data.get("pcm", b"")

    async def _on_bridge_audio(self, data: dict[str, Any]) -> None:
        self.bridge_audio += data.get("pcm", b"")

    async def wait_for(
        self,
        name: str,
        timeout: float = TIMEOUT_S,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
        **match: Any,
    ) -> dict[str, Any]:
        return await self.log.wait_for(name, timeout, where, **match)

    async def _on_status(self, data: dict[str, Any]) -> None:
        self.statuses.append(data)
        self._connected.set()

    async def connect(self, auth: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.sio.connect(
            self.url, namespaces=[NAMESPACE], auth=auth, transports=["websocket"], wait_timeout=10
        )
        await asyncio.wait_for(self._connected.wait(), timeout=TIMEOUT_S)
        return self.statuses[-1]

    async def request(self, event: str, payload: Any) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(
            event, payload, namespace=NAMESPACE, timeout=TIMEOUT_S
        )
        return ack

    async def login(self, pin: str) -> dict[str, Any]:
        ack = await self.request("authenticate", {"pin": pin})
        if not ack["ok"]:
            raise CallFailed(ack["error"]["message"])
        if not ack["data"]["ok"]:
            raise CallFailed(ack["data"]["reason"])
        return dict(ack["data"])

    async def say(self, text: str) -> dict[str, Any]:
        ack = await self.request("text_turn", {"text": text})
        if not ack["ok"]:
            raise CallFailed(ack["error"]["message"])
        return dict(ack["data"])

    async def open_mic(self, mode: str = "hands_free") -> None:
        ack = await self.request("mic", {"open": True, "mode": mode})
        if not ack["ok"]:
            raise CallFailed(ack["error"]["message"])
        self.mic_open = True

    async def stream(self, pcm: bytes, speed: float = 1.0) -> None:
        """Sends audio as 20 ms frames, paced like a live microphone (`speed` times faster;
        0 sends them all at once, which the edge sheds as a flood)."""
        started = time.monotonic()
        for index, frame in enumerate(frames(pcm)):
            await self.sio.emit(
                "audio_frame",
                {"seq": self._seq, "rate": SAMPLE_RATE, "pcm": frame},
                namespace=NAMESPACE,
            )
            self._seq += 1
            if speed > 0:
                delay = started + (index + 1) * FRAME_MS / 1000 / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def speak(self, pcm: bytes, speed: float = 1.0) -> dict[str, Any]:
        """One spoken turn: streams the utterance, then waits for the reply and its audio."""
        if not self.mic_open:
            await self.open_mic()
        before = {e["turn_key"] for e in self.events["speech"]}
        await self.stream(pcm + silence(TRAILING_SILENCE_MS), speed)
        try:
            ended = await self.wait_for(
                "speech", timeout=10, where=lambda e: e["turn_key"] not in before, event="end"
            )
        except TimeoutError:
            raise CallFailed("no speech was detected in that audio") from None
        turn_key = ended["turn_key"]
        reply = await self.wait_for("reply", turn_key=turn_key)
        if not reply["user"]:
            return {**reply, "audio_ms": 0, "timings": None}
        await self.wait_for("audio_done", turn_key=turn_key)
        timings = next((e for e in self.events["timings"] if e.get("turn_key") == turn_key), None)
        return {**reply, "audio_ms": duration_ms(len(self.audio[turn_key])), "timings": timings}

    async def close(self) -> None:
        await self.sio.disconnect()


async def run_call(url: str, pin: str, turns: list[tuple[str, str]], as_json: bool) -> int:
    """Each turn is ("say", text) or ("audio", path of a WAV file)."""
    caller = ScriptedCaller(url)
    try:
        audio = {value: read_wav(Path(value)) for kind, value in turns if kind == "audio"}
    except (OSError, ValueError) as error:
        print(f"cannot read audio: {error}", file=sys.stderr)
        return 2
    try:
        await caller.connect()
        login = await caller.login(pin)
        _print(as_json, {"event": "login", "assistant": login["greeting"]}, login["greeting"])
        for kind, value in turns:
            reply = await (caller.speak(audio[value]) if kind == "audio" else caller.say(value))
            _print_reply(as_json, reply)
        await caller.request("hang_up", {})
    except CallFailed as error:
        print(f"call failed: {error}", file=sys.stderr)
        return 1
    except (socketio.exceptions.ConnectionError, TimeoutError) as error:
        print(f"cannot reach Convonet at {url}: {error}", file=sys.stderr)
        return 2
    finally:
        await caller.close()
    return 0


def _print_reply(as_json: bool, reply: dict[str, Any]) -> None:
    record = {
        "user": reply["user"],
        "assistant": reply["assistant"],
        "tool_calls": reply["tool_calls"],
        "latency_ms": reply["latency_ms"],
        "state": reply["state"],
    }
    if "audio_ms" in reply:
        record.update(audio_ms=reply["audio_ms"], timings=reply["timings"])
    tools = ", ".join(c["name"] for c in reply["tool_calls"]) or "none"
    detail = f"tools: {tools}; {reply['latency_ms']} ms"
    v2v = (reply.get("timings") or {}).get("voice_to_voice_ms")
    if v2v is not None:
        detail += f"; voice-to-voice {v2v} ms; {reply['audio_ms']} ms of reply audio"
    _print(as_json, record, f"you: {reply['user']}\nassistant: {reply['assistant']}\n  ({detail})")


def _print(as_json: bool, record: dict[str, Any], text: str) -> None:
    print(json.dumps(record) if as_json else text, flush=True)
