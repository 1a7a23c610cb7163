"""`convonet call`: a scripted caller using the same Socket.IO interface as the browser."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import socketio

from api.protocol import NAMESPACE

TIMEOUT_S = 60


class CallFailed(Exception):
    pass


class ScriptedCaller:
    """Connects, logs in and sends text turns; every reply comes from the event's ack."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.statuses: list[dict[str, Any]] = []
        self._connected = asyncio.Event()
        self.sio.on("status", self._on_status, namespace=NAMESPACE)

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

    async def close(self) -> None:
        await self.sio.disconnect()


async def run_call(url: str, pin: str, lines: list[str], as_json: bool) -> int:
    caller = ScriptedCaller(url)
    try:
        await caller.connect()
        login = await caller.login(pin)
        _print(as_json, {"event": "login", "assistant": login["greeting"]}, login["greeting"])
        for line in lines:
            reply = await caller.say(line)
            record = {
                "user": reply["user"],
                "assistant": reply["assistant"],
                "tool_calls": reply["tool_calls"],
                "latency_ms": reply["latency_ms"],
                "state": reply["state"],
            }
            tools = ", ".join(c["name"] for c in reply["tool_calls"]) or "none"
            _print(
                as_json,
                record,
                f"you: {reply['user']}\nassistant: {reply['assistant']}"
                f"\n  (tools: {tools}; {reply['latency_ms']} ms)",
            )
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


def _print(as_json: bool, record: dict[str, Any], text: str) -> None:
    print(json.dumps(record) if as_json else text, flush=True)
