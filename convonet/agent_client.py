"""A scripted agent dashboard: logs in over REST, connects the `/agent` socket with the
login cookie, and records what the dashboard would show (docs/agent-protocol.md).

The transfer tests drive transfers with it, and `convonet bench bridge` plays the agent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import socketio

from convonet.call_client import EventLog
from convonet.speech.audio import SAMPLE_RATE, frames

NAMESPACE = "/agent"
EVENTS = ("agent_state", "ring", "call_state")
DEMO_LOGIN = "dana"
DEMO_PASSWORD = "agent-demo-2001"

# Called with each frame of the caller's voice as it arrives.
OnAudio = Callable[[bytes], Awaitable[None] | None]


class ScriptedAgent:
    def __init__(self, url: str, on_audio: OnAudio | None = None) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=10)
        self.sio = socketio.AsyncClient(reconnection=False)
        self.log = EventLog()
        self.events = self.log.events
        self.heard = bytearray()
        self.csrf = ""
        self.on_audio = on_audio
        self._seq = 0
        for name in EVENTS:
            self.sio.on(name, self.log.recorder(name), namespace=NAMESPACE)
        self.sio.on("audio_in", self._on_audio, namespace=NAMESPACE)

    async def _on_audio(self, data: dict[str, Any]) -> None:
        pcm = data.get("pcm", b"")
        self.heard += pcm
        if self.on_audio is not None:
            result = self.on_audio(pcm)
            if result is not None:
                await result

    async def login(
        self, login: str = DEMO_LOGIN, password: str = DEMO_PASSWORD, connect: bool = True
    ) -> dict[str, Any]:
        """Logs in over REST and, unless `connect` is false, connects the `/agent` socket."""
        response = await self.http.post(
            "/api/agent/login", json={"login": login, "password": password}
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        self.csrf = body["csrf_token"]
        if connect:
            await self.connect()
        return body

    async def connect(self) -> None:
        """Connects the `/agent` socket with the login's cookie."""
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        await self.sio.connect(
            self.url,
            namespaces=[NAMESPACE],
            headers={"Cookie": cookie},
            transports=["websocket"],
            wait_timeout=10,
        )

    async def wait_for(
        self,
        name: str,
        timeout: float = 20,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
        **match: Any,
    ) -> dict[str, Any]:
        return await self.log.wait_for(name, timeout, where, **match)

    async def request(self, event: str, payload: Any) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(event, payload, namespace=NAMESPACE, timeout=20)
        return ack

    async def send_frame(self, pcm: bytes) -> None:
        """One 20 ms frame (640 bytes of 16 kHz PCM) into the call, at once."""
        self._seq += 1
        await self.sio.emit(
            "audio_frame",
            {"seq": self._seq, "rate": SAMPLE_RATE, "pcm": pcm},
            namespace=NAMESPACE,
        )

    async def stream(self, pcm: bytes) -> None:
        """Talks into the call: 20 ms frames in real time."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, frame in enumerate(frames(pcm)):
            await self.send_frame(frame)
            delay = started + (index + 1) * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def dispose(self, call_record_id: int, disposition: str, notes: str) -> httpx.Response:
        return await self.http.post(
            f"/api/agent/calls/{call_record_id}/disposition",
            json={"disposition": disposition, "notes": notes},
            headers={"X-CSRF-Token": self.csrf},
        )

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.http.aclose()
