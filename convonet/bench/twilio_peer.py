"""A minimal Twilio for `convonet bench bridge --mode twilio`: the few parts of Twilio's
protocols that a transfer's agent leg uses, so the bench can run the Twilio bridge on one
machine with no account.

- REST: `POST /2010-04-01/Accounts/{sid}/Calls.json` creates a call (HTTP Basic auth with
  the account SID and auth token, as the twilio SDK sends it); `GET`/`POST .../Calls/{sid}.json`
  fetch it and hang it up (`Status=completed|canceled`).
- Status callbacks: `ringing`, `in-progress`, `completed`, ... posted to the call's
  StatusCallback, signed like Twilio's (`X-Twilio-Signature`, from
  `twilio.request_validator.RequestValidator.compute_signature`).
- Media Streams: answering connects the TwiML's `<Connect><Stream url>` websocket, sends
  `connected` and `start` (with the `<Parameter>`s as customParameters and the call SID),
  then the bench's 8 kHz mu-law `media` frames; `media` from the edge is handed to the
  bench as it arrives, and each `mark` is echoed once the audio before it would have
  played (20 ms a frame, in real time), as Twilio does; `clear` drops what is queued.

The bench drives the call (`ring`, `answer`, `send_audio`, `hang_up`); anything else
(Url TwiML, redirects, ring timeouts) is out of scope.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import secrets
import socket
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from convonet.speech import mulaw

API_VERSION = "2010-04-01"
TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
FRAME_S = 0.020

# Called with each 8 kHz 16-bit PCM frame the edge sends the agent, as it arrives.
OnMedia = Callable[[bytes], None]


def twilio_basic_auth_ok(request: Request, account_sid: str, auth_token: str) -> bool:
    """Twilio's REST authentication: HTTP Basic with the account SID and auth token, on a
    path under that same account."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return (
        secrets.compare_digest(user, account_sid)
        and secrets.compare_digest(password, auth_token)
        and request.path_params["account_sid"] == account_sid
    )


@dataclass
class PeerCall:
    sid: str
    to: str
    from_: str
    twiml: str
    status_callback: str | None
    status: str = "queued"
    stream_sid: str = ""
    ws: ClientConnection | None = None
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    media_received: int = 0
    callbacks_sent: int = 0
    errors: list[str] = field(default_factory=list)
    _play_clock: float = 0.0
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _sequence: int = 0
    _chunk: int = 0


class TwilioPeer:
    """`async with TwilioPeer(account_sid, auth_token, on_media) as peer:` serves at
    `peer.base_url` (point `TWILIO_API_BASE_URL` at it)."""

    def __init__(self, account_sid: str, auth_token: str, on_media: OnMedia) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.on_media = on_media
        self.validator = RequestValidator(auth_token)
        self.base_url = ""
        self.calls: dict[str, PeerCall] = {}
        self._new_calls: asyncio.Queue[PeerCall] = asyncio.Queue()
        self._http = httpx.AsyncClient(timeout=15, trust_env=False)
        self._server: contextlib.AbstractAsyncContextManager[str] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> TwilioPeer:
        self._server = _serve(self._app())
        self.base_url = await self._server.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for call in self.calls.values():
            await self._close_stream(call, send_stop=False)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._server is not None:
            await self._server.__aexit__(None, None, None)
        await self._http.aclose()

    # --- the bench's controls ---

    async def wait_for_call(self, timeout: float = 20) -> PeerCall:
        return await asyncio.wait_for(self._new_calls.get(), timeout)

    async def ring(self, call: PeerCall) -> int:
        return await self._status(call, "ringing")

    async def answer(self, call: PeerCall) -> int:
        """In progress, then the TwiML's stream is connected (`connected`, `start`)."""
        code = await self._status(call, "in-progress")
        stream = ElementTree.fromstring(call.twiml).find("./Connect/Stream")
        if stream is None or not stream.get("url"):
            raise RuntimeError("the call's TwiML has no <Connect><Stream url=...>")
        url = stream.get("url", "")
        parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, {})}
        call.ws = await connect(
            url, additional_headers=headers, compression=None, proxy=None, open_timeout=5
        )
        call.stream_sid = "MZ" + secrets.token_hex(16)
        await self._send(call, {"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = {
            "accountSid": self.account_sid,
            "streamSid": call.stream_sid,
            "callSid": call.sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self._send(call, {"event": "start", "start": start})
        call._tasks.append(asyncio.create_task(self._read(call)))
        return code

    async def send_audio(self, call: PeerCall, pcm8k: bytes) -> None:
        """One `media` message: 8 kHz 16-bit PCM, sent as mu-law at once."""
        call._chunk += 1
        payload = base64.b64encode(mulaw.encode(pcm8k)).decode("ascii")
        media = {
            "track": "inbound",
            "chunk": str(call._chunk),
            "timestamp": str(call._chunk * 20),
            "payload": payload,
        }
        await self._send(call, {"event": "media", "media": media})

    async def hang_up(self, call: PeerCall) -> int:
        """The agent hangs up: `stop`, the socket closes, CallStatus=completed."""
        already = call.status in TERMINAL
        call.status = "completed"  # so the stream's reader does not report the close itself
        await self._close_stream(call, send_stop=True)
        if already:
            return 0
        return await self._status(call, "completed")

    # --- media ---

    async def _send(self, call: PeerCall, message: dict[str, Any]) -> None:
        if call.ws is None:
            raise RuntimeError("the call has no media stream")
        async with call._send_lock:
            if message["event"] != "connected":
                call._sequence += 1
                message = {
                    **message,
                    "sequenceNumber": str(call._sequence),
                    "streamSid": call.stream_sid,
                }
            await call.ws.send(json.dumps(message))

    async def _read(self, call: PeerCall) -> None:
        assert call.ws is not None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            async for raw in call.ws:
                try:
                    message = json.loads(raw)
                    event = message.get("event")
                except (ValueError, AttributeError):
                    call.errors.append(f"not JSON: {str(raw)[:60]}")
                    continue
                if event == "media":
                    try:
                        ulaw = base64.b64decode(message["media"]["payload"], validate=True)
                    except (KeyError, TypeError, binascii.Error):
                        call.errors.append("media without a payload")
                        continue
                    call.media_received += 1
                    self.on_media(mulaw.decode(ulaw))
                    # Played in real time after whatever is queued.
                    call._play_clock = max(call._play_clock, loop.time()) + len(ulaw) / 8000
                elif event == "mark":
                    call.marks_received += 1
                    name = (message.get("mark") or {}).get("name", "")
                    self._spawn(self._echo_mark(call, name, call._play_clock, call.clears))
                elif event == "clear":
                    call.clears += 1
                    call._play_clock = loop.time()
                else:
                    call.errors.append(f"unexpected event {event!r}")
        if call.status not in TERMINAL:  # the edge closed the stream: the call ends
            call.ws = None
            await self._status(call, "completed")

    async def _echo_mark(self, call: PeerCall, name: str, due: float, clears: int) -> None:
        """Echoes a mark when the audio queued before it has played, or at once after a
        `clear` dropped that audio."""
        loop = asyncio.get_running_loop()
        while loop.time() < due and call.clears == clears:
            await asyncio.sleep(min(FRAME_S, max(0.0, due - loop.time())))
        with contextlib.suppress(ConnectionClosed, RuntimeError):
            await self._send(call, {"event": "mark", "mark": {"name": name}})
            call.marks_echoed += 1

    async def _close_stream(self, call: PeerCall, send_stop: bool) -> None:
        ws, call.ws = call.ws, None
        if ws is None:
            return
        if send_stop:
            with contextlib.suppress(ConnectionClosed):
                call._sequence += 1
                stop = {"accountSid": self.account_sid, "callSid": call.sid}
                await ws.send(
                    json.dumps(
                        {
                            "event": "stop",
                            "sequenceNumber": str(call._sequence),
                            "streamSid": call.stream_sid,
                            "stop": stop,
                        }
                    )
                )
        await ws.close()
        for task in call._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- status callbacks ---

    async def _status(self, call: PeerCall, status: str) -> int:
        """Moves the call to `status` and posts the signed callback; our API's answer."""
        call.status = status
        if not call.status_callback:
            return 0
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
            # Twilio numbers each call's callbacks from 0.
            "SequenceNumber": str(call.callbacks_sent),
        }
        call.callbacks_sent += 1
        signature = self.validator.compute_signature(call.status_callback, params)
        try:
            response = await self._http.post(
                call.status_callback, data=params, headers={"X-Twilio-Signature": signature}
            )
        except httpx.HTTPError as error:
            call.errors.append(f"status callback {status} failed: {error!r}")
            return 0
        return response.status_code

    # --- REST ---

    def _app(self) -> Starlette:
        base = f"/{API_VERSION}/Accounts/{{account_sid}}"
        return Starlette(
            routes=[
                Route(f"{base}/Calls.json", self._create, methods=["POST"]),
                Route(f"{base}/Calls/{{call_sid}}.json", self._call, methods=["GET", "POST"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        return twilio_basic_auth_ok(request, self.account_sid, self.auth_token)

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        form = parse_qs((await request.body()).decode(), keep_blank_values=True)

        def one(name: str) -> str | None:
            values = form.get(name)
            return values[-1] if values else None

        to, from_, twiml = one("To"), one("From"), one("Twiml")
        if not to or not from_ or not twiml:
            return _error(400, 21205, "To, From and Twiml are required here")
        call = PeerCall(
            sid="CA" + secrets.token_hex(16),
            to=to,
            from_=from_,
            twiml=twiml,
            status_callback=one("StatusCallback"),
        )
        self.calls[call.sid] = call
        self._new_calls.put_nowait(call)
        return JSONResponse(self._json(call), status_code=201)

    async def _call(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        call = self.calls.get(request.path_params["call_sid"])
        if call is None:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        if request.method == "POST":
            form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
            status = form.get("Status")
            if status in ("completed", "canceled") and call.status not in TERMINAL:
                final = "canceled" if call.status in ("queued", "ringing") else "completed"
                call.status = final

                async def teardown() -> None:
                    await self._close_stream(call, send_stop=True)
                    await self._status(call, final)

                self._spawn(teardown())
        return JSONResponse(self._json(call))

    def _json(self, call: PeerCall) -> dict[str, Any]:
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "direction": "outbound-api",
            "api_version": API_VERSION,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call.sid}.json",
        }


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {"code": code, "message": message, "status": status}
    return JSONResponse(body, status_code=status)


@asynccontextmanager
async def _serve(app: Starlette) -> AsyncIterator[str]:
    """Runs the app with uvicorn in this loop on a fresh loopback port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        started = time.monotonic()
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the Twilio peer stopped before it started")
            if time.monotonic() - started > 10:
                raise TimeoutError("the Twilio peer did not start")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
