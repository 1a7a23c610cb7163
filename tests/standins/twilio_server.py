"""A local Twilio: the Calls REST resource, signed status callbacks and the bidirectional
Media Streams websocket, speaking the protocols Twilio documents, driven by the test.

It runs in the test's own event loop (uvicorn in a task, like `tests/system.py::run_api`),
on a loopback socket bound before the server starts, so there is no port race. The twilio
SDK's calls are blocking: run them off the loop (`asyncio.to_thread`, as the worker does),
or the loop that must answer them is the one that is waiting.

Point the SDK at it with `client.api.base_url = standin.base_url` (twilio 9 builds every
Calls URL from `Domain.base_url`). Leave `region`/`edge` and TWILIO_REGION/TWILIO_EDGE
unset: with either, the SDK rewrites the host name and the loopback address breaks.

Calls can be read one by one or listed (newest first, filtered by To, From and Status).

A call's life is the test's to drive, as a phone and Twilio would: `ring`, `answer` (which
connects the TwiML's `<Connect><Stream>` and sends `connected` and `start`), `send_audio`
(20 ms `media` frames, paced in real time), `hang_up` (`stop`, close, `completed`) or
`finish` (busy, no-answer, failed, canceled). Each posts the status callback Twilio would,
signed with the auth token over the exact callback URL and parameters, and returns the
HTTP status our API answered (0 when no callback was due or the API could not be reached).
`initiated` is posted by itself right after the call is created, as Twilio does.

While a stream is up, outbound audio the edge sends is buffered and "played" in real time:
each `mark` is echoed once the audio queued before it has played, and `clear` drops the
buffered audio and echoes pending marks at once. With `idle_silence` (the default) Twilio's
continuous flow of 20 ms frames is kept up with mu-law silence between `send_audio` calls.

Our edge may also end things: closing the websocket ends the `<Connect>`, so the call
completes; a refused websocket handshake does the same, with `call.stream_error` set.

Not modelled: `Url` TwiML fetching, redirects, ring timeouts (call `finish(call,
"no-answer")`), DTMF, recordings. The mu-law codec here is written independently of
`convonet.speech.mulaw`, so tests of the edge are not checked against themselves.
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
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from convonet.bench.twilio_peer import twilio_basic_auth_ok

API_VERSION = "2010-04-01"
TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
NOT_ANSWERED = frozenset({"queued", "initiated", "ringing"})
# Which statusCallbackEvent each CallStatus belongs to; every final status is "completed".
EVENT_OF_STATUS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}
# SIP final responses Twilio reports for a SIP leg that ended each way.
SIP_CODES = {"completed": 200, "busy": 486, "no-answer": 487, "failed": 404}
FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
FRAME_S = 0.020
ULAW_SILENCE = 0xFF
CALLBACK_TIMEOUT_S = 15.0  # how long Twilio waits for a webhook


# --- mu-law, independent of convonet.speech.mulaw (same G.711 as audioop) ---------------


def _ulaw_to_linear(code: int) -> int:
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    value = ((2 * (inverted & 0x0F) + 33) << (exponent + 2)) - 0x84
    return -value if inverted & 0x80 else value


def _linear_to_ulaw(sample: int) -> int:
    # audioop codes the sample shifted down to 14 bits, where the bias is 33 and clip 8159.
    sample14 = sample >> 2
    flip = 0x7F if sample14 < 0 else 0xFF
    magnitude = min(abs(sample14), 8159) + 33
    exponent = max(0, magnitude.bit_length() - 6)
    if exponent > 7:
        return 0x7F ^ flip
    return ((exponent << 4) | ((magnitude >> (exponent + 1)) & 0x0F)) ^ flip


_TO_LINEAR = np.array([_ulaw_to_linear(code) for code in range(256)], dtype="<i2")
# Indexed by the sample's bits read as unsigned 16-bit.
_TO_ULAW = np.array(
    [_linear_to_ulaw(int(s)) for s in np.arange(65536, dtype=np.uint16).view(np.int16)],
    dtype=np.uint8,
)


def ulaw_to_pcm(ulaw: bytes) -> bytes:
    """Mu-law to 16-bit little-endian PCM (the stand-in's own table)."""
    return _TO_LINEAR[np.frombuffer(ulaw, dtype=np.uint8)].tobytes()


def pcm_to_ulaw(pcm: bytes) -> bytes:
    """16-bit little-endian PCM to mu-law (the stand-in's own table)."""
    return _TO_ULAW[np.frombuffer(pcm, dtype="<u2", count=len(pcm) // 2)].tobytes()


# --- records ---------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment else None


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class CallbackRecord:
    """One status callback as posted: what was sent, and what our API answered."""

    url: str
    params: dict[str, str]
    signature: str | None
    status_code: int  # 0: our API could not be reached
    error: str | None = None


@dataclass
class _Media:
    """The live side of one Media Stream (the stand-in is the websocket client)."""

    ws: ClientConnection
    started_at: float
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Held per inbound frame by the pump and per burst by send_audio(realtime=False),
    # so idle silence never lands inside a burst.
    inbound_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sequence: int = 0
    chunk: int = 0
    last_timestamp: int = -20
    # Inbound frames waiting for their 20 ms slot, each with who waits for it to be sent.
    pending: deque[tuple[bytes, asyncio.Future[None] | None]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Outbound playback queue: bytes are audio, str are mark names.
    playback: deque[bytes | str] = field(default_factory=deque)
    play_wake: asyncio.Event = field(default_factory=asyncio.Event)
    play_clock: float = 0.0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closing: bool = False


@dataclass
class StandInCall:
    """One call created through the REST API, with everything that happened to it."""

    sid: str
    account_sid: str
    to: str
    from_: str
    twiml: str | None
    url: str | None
    status_callback: str | None
    status_callback_method: str
    status_callback_events: list[str]
    timeout: int | None
    sip_auth_username: str | None
    sip_auth_password: str | None
    form: dict[str, list[str]]  # every field of the create request, as sent
    status: str = "queued"
    date_created: datetime = field(default_factory=_now)
    date_updated: datetime = field(default_factory=_now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    answered_at: float | None = None  # monotonic, for CallDuration
    ended_at: float | None = None  # monotonic
    callbacks: list[CallbackRecord] = field(default_factory=list)
    updates: list[dict[str, str]] = field(default_factory=list)  # REST updates, as sent
    # The media stream, once answered.
    stream_sid: str | None = None
    stream_url: str | None = None
    custom_parameters: dict[str, str] = field(default_factory=dict)
    stream_error: str | None = None  # the <Connect><Stream> could not connect
    stream_closed_by: str | None = None  # "twilio" or "edge"
    sent_events: list[dict[str, Any]] = field(default_factory=list)  # to the edge, in order
    received_events: list[dict[str, Any]] = field(default_factory=list)  # from the edge
    outbound_ulaw: bytearray = field(default_factory=bytearray)  # all media the edge sent
    played_ulaw: bytearray = field(default_factory=bytearray)  # what was not cleared first
    marks_received: list[str] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    clears: int = 0
    protocol_errors: list[str] = field(default_factory=list)
    _media: _Media | None = field(default=None, repr=False, compare=False)
    _initiated: asyncio.Task[int] | None = field(default=None, repr=False, compare=False)
    _callback_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _callback_sequence: int = 0

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    @property
    def duration_s(self) -> int:
        if self.answered_at is None:
            return 0
        return round((self.ended_at or time.monotonic()) - self.answered_at)


class CallStateError(RuntimeError):
    """The test asked for something the call's state does not allow (e.g. answer twice)."""


# --- serving ---------------------------------------------------------------------------


@asynccontextmanager
async def serve_app(app: ASGIApp) -> AsyncIterator[str]:
    """Runs an ASGI app with uvicorn in this loop on a fresh loopback port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


class TwilioStandIn:
    """`async with TwilioStandIn(sid, token) as twilio:` serves at `twilio.base_url`.

    `idle_silence=False` sends inbound frames only for `send_audio`, which makes frame
    counts exact; `auto_initiated=False` leaves out the automatic `initiated` callback."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        idle_silence: bool = True,
        auto_initiated: bool = True,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.idle_silence = idle_silence
        self.auto_initiated = auto_initiated
        self.validator = RequestValidator(auth_token)
        self.base_url = ""
        self.calls: dict[str, StandInCall] = {}
        # Set to (HTTP status, Twilio error code, message) to refuse every new call.
        self.refuse_calls: tuple[int, int, str] | None = None
        # Every REST request: (method, path, HTTP status answered).
        self.rest_log: list[tuple[str, str, int]] = []
        self._new_calls: asyncio.Queue[StandInCall] = asyncio.Queue()
        self._background: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None
        self._server: contextlib.AbstractAsyncContextManager[str] | None = None

    # --- lifecycle ---

    async def __aenter__(self) -> TwilioStandIn:
        self._http = httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_S, trust_env=False)
        self._server = serve_app(self._app())
        self.base_url = await self._server.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for call in self.calls.values():
            await self._stop_stream(call, send_stop=False)
            if call._media is not None:
                for task in call._media.tasks:
                    task.cancel()
                await asyncio.gather(*call._media.tasks, return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._server is not None:
            await self._server.__aexit__(exc_type, exc, tb)
        if self._http is not None:
            await self._http.aclose()

    # --- the test's controls ---

    async def wait_for_call(self, timeout: float = 10) -> StandInCall:
        """The next call created through the REST API."""
        return await asyncio.wait_for(self._new_calls.get(), timeout)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        """Polls until `condition()` holds, e.g. `lambda: "m1" in call.marks_echoed`."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)

    async def ring(self, call: StandInCall) -> int:
        """The agent's phone rings: CallStatus=ringing."""
        await self._settle(call)
        if call.status not in ("queued", "initiated"):
            raise CallStateError(f"cannot ring a call that is {call.status}")
        return await self._set_status(call, "ringing")

    async def answer(self, call: StandInCall) -> int:
        """The agent answers: CallStatus=in-progress, then the TwiML's <Connect><Stream>
        is connected. Returns our API's answer to the in-progress callback."""
        await self._settle(call)
        if call.status not in NOT_ANSWERED:
            raise CallStateError(f"cannot answer a call that is {call.status}")
        if call.twiml is None:
            raise NotImplementedError("the stand-in only runs inline Twiml, not Url")
        call.start_time = _now()
        call.answered_at = time.monotonic()
        code = await self._set_status(call, "in-progress")
        if not call.ended:  # our API may have hung up while the callback was answered
            await self._connect_stream(call)
        return code

    async def send_audio(
        self, call: StandInCall, pcm8k_s16le: bytes, realtime: bool = True
    ) -> None:
        """What the agent says: 8 kHz 16-bit PCM, sent as 20 ms `media` frames (the last
        padded with silence). Paced in real time when `realtime`, else sent at once.
        Returns once the last frame has been sent."""
        media = self._live_media(call)
        ulaw = pcm_to_ulaw(pcm8k_s16le)
        frames = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
        if frames and len(frames[-1]) < FRAME_BYTES:
            frames[-1] += bytes([ULAW_SILENCE]) * (FRAME_BYTES - len(frames[-1]))
        if not frames:
            return
        if not realtime:
            async with media.inbound_lock:
                for frame in frames:
                    await self._send_media(call, media, frame)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for index, frame in enumerate(frames):
            media.pending.append((frame, done if index == len(frames) - 1 else None))
        media.wake.set()
        await done

    def received_pcm(self, call: StandInCall) -> bytes:
        """All outbound audio our edge sent on the call's stream, as 8 kHz 16-bit PCM."""
        return ulaw_to_pcm(bytes(call.outbound_ulaw))

    def played_pcm(self, call: StandInCall) -> bytes:
        """The outbound audio that was played before any `clear` dropped it."""
        return ulaw_to_pcm(bytes(call.played_ulaw))

    async def hang_up(self, call: StandInCall) -> int:
        """The agent hangs up: `stop`, the websocket closes, CallStatus=completed."""
        await self._settle(call)
        if call.status != "in-progress":
            raise CallStateError(f"cannot hang up a call that is {call.status}")
        await self._stop_stream(call, send_stop=True, closed_by="twilio")
        return await self._end(call, "completed")

    async def finish(
        self, call: StandInCall, status: str, sip_response_code: int | None = None
    ) -> int:
        """The call ends without being answered: busy, no-answer, failed or canceled."""
        if status not in ("busy", "no-answer", "failed", "canceled"):
            raise ValueError(f"not an unanswered ending: {status}")
        await self._settle(call)
        if call.status not in NOT_ANSWERED:
            raise CallStateError(f"cannot end as {status} a call that is {call.status}")
        return await self._end(call, status, sip_response_code)

    async def post_callback(
        self, call: StandInCall, params: dict[str, str], signature: str | None = "auto"
    ) -> int:
        """Posts `params` to the call's StatusCallback as they are. `signature` is the
        X-Twilio-Signature header: "auto" signs them correctly, None leaves it out."""
        if not call.status_callback:
            raise CallStateError("the call has no StatusCallback")
        url = call.status_callback
        body: dict[str, str] | None = params
        if call.status_callback_method == "GET":
            url = url + ("&" if "?" in url else "?") + urlencode(params)
            body = None
        if signature == "auto":
            signature = self.validator.compute_signature(url, body or {})
        headers = {"User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": _sid("")}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        assert self._http is not None, "use the stand-in as an async context manager"
        try:
            if body is None:
                response = await self._http.get(url, headers=headers)
            else:
                response = await self._http.post(url, data=body, headers=headers)
        except httpx.HTTPError as error:
            call.callbacks.append(CallbackRecord(url, dict(params), signature, 0, repr(error)))
            return 0
        call.callbacks.append(CallbackRecord(url, dict(params), signature, response.status_code))
        return response.status_code

    def status_params(
        self, call: StandInCall, status: str, sip_response_code: int | None = None
    ) -> dict[str, str]:
        """The parameters of a status callback for `status`, with the next SequenceNumber."""
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
            "Timestamp": format_datetime(_now()),
            "SequenceNumber": str(call._callback_sequence),
            "CallbackSource": "call-progress-events",
        }
        if status in TERMINAL:
            params["CallDuration"] = str(call.duration_s)
        code = sip_response_code or SIP_CODES.get(status)
        if code is not None and status in TERMINAL:
            params["SipResponseCode"] = str(code)
        return params

    # --- call progress ---

    async def _settle(self, call: StandInCall) -> None:
        # The automatic `initiated` callback goes first, as on Twilio.
        if call._initiated is not None:
            with contextlib.suppress(Exception):
                await call._initiated

    def _apply(self, call: StandInCall, status: str) -> None:
        call.status = status
        call.date_updated = _now()
        if status in TERMINAL:
            call.end_time = call.date_updated
            call.ended_at = time.monotonic()

    async def _announce(
        self, call: StandInCall, status: str, sip_response_code: int | None = None
    ) -> int:
        event = EVENT_OF_STATUS.get(status, "completed")
        # Twilio always reports the final status; the others only when asked for.
        if not call.status_callback or (
            status not in TERMINAL and event not in call.status_callback_events
        ):
            return 0
        async with call._callback_lock:
            params = self.status_params(call, status, sip_response_code)
            call._callback_sequence += 1
            return await self.post_callback(call, params)

    async def _set_status(
        self, call: StandInCall, status: str, sip_response_code: int | None = None
    ) -> int:
        self._apply(call, status)
        return await self._announce(call, status, sip_response_code)

    async def _end(
        self, call: StandInCall, status: str, sip_response_code: int | None = None
    ) -> int:
        if call.ended:
            return 0
        return await self._set_status(call, status, sip_response_code)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- media stream ---

    def _live_media(self, call: StandInCall) -> _Media:
        if call._media is None or call._media.closing:
            raise CallStateError("the call has no live media stream")
        return call._media

    async def _connect_stream(self, call: StandInCall) -> None:
        assert call.twiml is not None
        try:
            stream = ElementTree.fromstring(call.twiml).find("./Connect/Stream")
        except ElementTree.ParseError as error:
            stream, call.stream_error = None, f"invalid TwiML: {error}"
        if stream is None or not stream.get("url"):
            # Nothing to connect: the TwiML ends, and so does the call.
            call.stream_error = call.stream_error or "no <Connect><Stream url=...> in TwiML"
            await self._end(call, "completed")
            return
        url = stream.get("url", "")
        call.stream_url = url
        call.custom_parameters = {
            p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")
        }
        # Twilio signs the websocket handshake too (URL only, no parameters).
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, {})}
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                user_agent_header="Twilio.TmeWs/1.0",
                compression=None,
                proxy=None,
                open_timeout=5,
                max_size=None,
            )
        except Exception as error:  # refused, unreachable, timed out: the stream failed
            call.stream_error = f"websocket connect failed: {error!r}"
            await self._end(call, "completed")
            return
        if call.ended:
            await ws.close()
            return
        call.stream_sid = _sid("MZ")
        media = _Media(ws=ws, started_at=asyncio.get_running_loop().time())
        call._media = media
        await self._send(
            call, media, {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        )
        await self._send(
            call,
            media,
            {
                "event": "start",
                "start": {
                    "accountSid": call.account_sid,
                    "streamSid": call.stream_sid,
                    "callSid": call.sid,
                    "tracks": ["inbound"],
                    "customParameters": call.custom_parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            },
        )
        media.tasks = [
            asyncio.create_task(self._read(call, media)),
            asyncio.create_task(self._play(call, media)),
            asyncio.create_task(self._pump(call, media)),
        ]

    async def _send(self, call: StandInCall, media: _Media, message: dict[str, Any]) -> None:
        async with media.send_lock:
            if message["event"] != "connected":
                media.sequence += 1
                message = {
                    "event": message["event"],
                    "sequenceNumber": str(media.sequence),
                    **{k: v for k, v in message.items() if k != "event"},
                    "streamSid": call.stream_sid,
                }
            call.sent_events.append(message)
            await media.ws.send(json.dumps(message))

    async def _send_media(self, call: StandInCall, media: _Media, frame: bytes) -> None:
        elapsed_ms = int((asyncio.get_running_loop().time() - media.started_at) * 1000)
        # The media clock advances 20 ms a frame even when frames are sent in a burst.
        media.last_timestamp = max(elapsed_ms, media.last_timestamp + 20)
        media.chunk += 1
        message = {
            "event": "media",
            "media": {
                "track": "inbound",
                "chunk": str(media.chunk),
                "timestamp": str(media.last_timestamp),
                "payload": base64.b64encode(frame).decode("ascii"),
            },
        }
        await self._send(call, media, message)

    async def _pump(self, call: StandInCall, media: _Media) -> None:
        """Sends one inbound frame every 20 ms: the test's audio, else silence."""
        loop = asyncio.get_running_loop()
        silence = bytes([ULAW_SILENCE]) * FRAME_BYTES
        next_at = loop.time()
        with contextlib.suppress(ConnectionClosed):
            while True:
                if media.pending:
                    frame, done = media.pending.popleft()
                elif self.idle_silence:
                    frame, done = silence, None
                else:
                    media.wake.clear()
                    await media.wake.wait()
                    next_at = max(next_at, loop.time())
                    continue
                async with media.inbound_lock:
                    await self._send_media(call, media, frame)
                if done is not None and not done.done():
                    done.set_result(None)
                # Keep to the wall clock, but after a long stall restart rather than burst.
                next_at = max(next_at + FRAME_S, loop.time() - 0.2)
                await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def _read(self, call: StandInCall, media: _Media) -> None:
        """Takes the edge's media, mark and clear messages until the socket closes."""
        with contextlib.suppress(ConnectionClosed):
            async for raw in media.ws:
                self._handle(call, media, raw)
        if media.closing:
            return
        # The edge closed the stream: <Connect> ends, and with no more TwiML the call ends.
        call.stream_closed_by = "edge"
        await self._stop_stream(call, send_stop=False)
        await self._end(call, "completed")

    def _handle(self, call: StandInCall, media: _Media, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            call.protocol_errors.append("binary frame")
            return
        try:
            message = json.loads(raw)
        except ValueError:
            call.protocol_errors.append(f"not JSON: {raw[:80]!r}")
            return
        if not isinstance(message, dict):
            call.protocol_errors.append(f"not an object: {raw[:80]!r}")
            return
        call.received_events.append(message)
        event = message.get("event")
        if message.get("streamSid") != call.stream_sid:
            call.protocol_errors.append(f"{event}: streamSid {message.get('streamSid')!r}")
        if event == "media":
            payload = (message.get("media") or {}).get("payload")
            try:
                audio = base64.b64decode(payload, validate=True) if payload else b""
            except (binascii.Error, TypeError):
                audio = b""
            if not audio:
                call.protocol_errors.append("media without a base64 payload")
                return
            call.outbound_ulaw.extend(audio)
            media.playback.append(audio)
        elif event == "mark":
            name = (message.get("mark") or {}).get("name")
            if not isinstance(name, str):
                call.protocol_errors.append("mark without a name")
                return
            call.marks_received.append(name)
            media.playback.append(name)
        elif event == "clear":
            call.clears += 1
            marks = [item for item in media.playback if isinstance(item, str)]
            media.playback.clear()
            # Cleared audio never plays, so the marks after it are due at once.
            media.playback.extend(marks)
        else:
            call.protocol_errors.append(f"unknown event {event!r}")
            return
        media.play_wake.set()

    async def _play(self, call: StandInCall, media: _Media) -> None:
        """Plays buffered outbound audio in real time; echoes each mark when reached."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            while True:
                if not media.playback:
                    media.play_wake.clear()
                    await media.play_wake.wait()
                    continue
                item = media.playback.popleft()
                if isinstance(item, str):
                    call.marks_echoed.append(item)
                    await self._send(call, media, {"event": "mark", "mark": {"name": item}})
                    continue
                piece, rest = item[:FRAME_BYTES], item[FRAME_BYTES:]
                if rest:
                    media.playback.appendleft(rest)
                call.played_ulaw.extend(piece)
                media.play_clock = max(media.play_clock, loop.time()) + len(piece) / 8000
                await asyncio.sleep(media.play_clock - loop.time())

    async def _stop_stream(
        self, call: StandInCall, send_stop: bool, closed_by: str | None = None
    ) -> None:
        media = call._media
        if media is None or media.closing:
            return
        media.closing = True
        call.stream_closed_by = call.stream_closed_by or closed_by
        # The reader may be the one stopping the stream (the edge closed it).
        others = [task for task in media.tasks if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        for _frame, done in media.pending:
            if done is not None and not done.done():
                done.set_exception(CallStateError("the stream ended"))
        media.pending.clear()
        if send_stop:
            with contextlib.suppress(ConnectionClosed):
                stop = {"accountSid": call.account_sid, "callSid": call.sid}
                await self._send(call, media, {"event": "stop", "stop": stop})
        await media.ws.close()

    # --- REST ---

    def _app(self) -> Starlette:
        base = f"/{API_VERSION}/Accounts/{{account_sid}}"
        return Starlette(
            routes=[
                Route(f"{base}/Calls.json", self._create_call, methods=["POST"]),
                Route(f"{base}/Calls.json", self._list_calls, methods=["GET"]),
                Route(f"{base}/Calls/{{call_sid}}.json", self._call, methods=["GET", "POST"]),
            ]
        )

    async def _form(self, request: Request) -> dict[str, list[str]]:
        # Parsed by hand so repeated fields (StatusCallbackEvent) keep every value.
        return parse_qs((await request.body()).decode(), keep_blank_values=True)

    def _authorized(self, request: Request) -> bool:
        return twilio_basic_auth_ok(request, self.account_sid, self.auth_token)

    def _logged(self, request: Request, response: Response) -> Response:
        self.rest_log.append((request.method, request.url.path, response.status_code))
        return response

    async def _create_call(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._logged(request, _unauthorized())
        form = await self._form(request)

        def one(name: str) -> str | None:
            values = form.get(name)
            return values[-1] if values else None

        to, from_, twiml, url = one("To"), one("From"), one("Twiml"), one("Url")
        if not to:
            return self._logged(request, _error(400, 21201, "No 'To' number is specified"))
        if not from_:
            return self._logged(request, _error(400, 21213, "No 'From' number is specified"))
        if not twiml and not url and not one("ApplicationSid"):
            message = "Either a 'Url', 'ApplicationSid' or 'Twiml' parameter is required"
            return self._logged(request, _error(400, 21205, message))
        if self.refuse_calls is not None:
            status, code, message = self.refuse_calls
            return self._logged(request, _error(status, code, message))
        timeout = one("Timeout")
        call = StandInCall(
            sid=_sid("CA"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            twiml=twiml,
            url=url,
            status_callback=one("StatusCallback"),
            status_callback_method=(one("StatusCallbackMethod") or "POST").upper(),
            status_callback_events=form.get("StatusCallbackEvent", []),
            timeout=int(timeout) if timeout else None,
            sip_auth_username=one("SipAuthUsername"),
            sip_auth_password=one("SipAuthPassword"),
            form=form,
        )
        self.calls[call.sid] = call
        if self.auto_initiated:
            call._initiated = self._spawn(self._set_status(call, "initiated"))
        self._new_calls.put_nowait(call)
        return self._logged(request, JSONResponse(self._call_json(call), status_code=201))

    async def _list_calls(self, request: Request) -> Response:
        """The account's calls, newest first, filtered by To, From and Status as Twilio's
        list is (one page: the stand-in holds few calls)."""
        if not self._authorized(request):
            return self._logged(request, _unauthorized())
        query = request.query_params
        filters = {"to": query.get("To"), "from_": query.get("From"), "status": query.get("Status")}
        try:
            page_size = int(query.get("PageSize", "50"))
        except ValueError:
            return self._logged(request, _error(400, 20001, "PageSize must be a number"))
        calls = [
            call
            for call in sorted(self.calls.values(), key=lambda c: c.date_created, reverse=True)
            if all(value is None or getattr(call, name) == value for name, value in filters.items())
        ][:page_size]
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"
        body = {
            "calls": [self._call_json(call) for call in calls],
            "end": max(len(calls) - 1, 0),
            "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": f"{uri}?PageSize={page_size}&Page=0",
        }
        return self._logged(request, JSONResponse(body))

    async def _call(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._logged(request, _unauthorized())
        call = self.calls.get(request.path_params["call_sid"])
        if call is None:
            message = f"The requested resource {request.url.path} was not found"
            return self._logged(request, _error(404, 20404, message))
        if request.method == "POST":
            form = {k: v[-1] for k, v in (await self._form(request)).items()}
            call.updates.append(form)
            status = form.get("Status")
            if set(form) != {"Status"} or status not in ("canceled", "completed"):
                message = "The stand-in only models Status=canceled|completed updates"
                return self._logged(request, _error(400, 21220, message))
            self._hang_up_from_api(call, status)
        return self._logged(request, JSONResponse(self._call_json(call)))

    def _hang_up_from_api(self, call: StandInCall, status: str) -> None:
        if call.ended:
            return
        if call.status in NOT_ANSWERED:
            final = "canceled"
        elif status == "completed":
            final = "completed"
        else:
            return  # Twilio: canceled does not touch a call in progress
        # The answer shows the new status at once; the teardown and callback follow.
        self._apply(call, final)

        async def teardown() -> None:
            await self._settle(call)
            await self._stop_stream(call, send_stop=True, closed_by="twilio")
            await self._announce(call, final)

        self._spawn(teardown())

    def _call_json(self, call: StandInCall) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{call.account_sid}/Calls/{call.sid}"
        return {
            "sid": call.sid,
            "account_sid": call.account_sid,
            "parent_call_sid": None,
            "to": call.to,
            "to_formatted": call.to,
            "from": call.from_,
            "from_formatted": call.from_,
            "phone_number_sid": None,
            "status": call.status,
            "start_time": _rfc2822(call.start_time),
            "end_time": _rfc2822(call.end_time),
            "duration": str(call.duration_s) if call.ended else None,
            "price": None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": None,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "annotation": None,
            "date_created": _rfc2822(call.date_created),
            "date_updated": _rfc2822(call.date_updated),
            "uri": f"{uri}.json",
            "subresource_uris": {
                "notifications": f"{uri}/Notifications.json",
                "recordings": f"{uri}/Recordings.json",
                "payments": f"{uri}/Payments.json",
                "events": f"{uri}/Events.json",
                "siprec": f"{uri}/Siprec.json",
                "streams": f"{uri}/Streams.json",
                "transcriptions": f"{uri}/Transcriptions.json",
                "user_defined_message_subscriptions": f"{uri}/UserDefinedMessageSubscriptions.json",
                "user_defined_messages": f"{uri}/UserDefinedMessages.json",
            },
        }


def _unauthorized() -> Response:
    response = _error(401, 20003, "Authenticate")
    response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response
