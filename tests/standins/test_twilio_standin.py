"""The Twilio stand-in, checked with Twilio's own SDK and signature validator, so tests of
our edge that use it stand on the documented protocol rather than on our reading of it."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from tests.standins.twilio_server import (
    CallStateError,
    StandInCall,
    TwilioStandIn,
    pcm_to_ulaw,
    serve_app,
    ulaw_to_pcm,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ACCOUNT = "AC" + "5e" * 16
TOKEN = "standin-auth-token-0123456789abcdef"
EVENTS = ["initiated", "ringing", "answered", "completed"]


def tone(ms: int, hz: float = 440.0, amplitude: int = 9000) -> bytes:
    count = 8 * ms
    samples = (round(amplitude * math.sin(2 * math.pi * hz * i / 8000)) for i in range(count))
    return b"".join(s.to_bytes(2, "little", signed=True) for s in samples)


class Receiver:
    """Our API's side of status callbacks, validated the way Twilio tells us to."""

    def __init__(self) -> None:
        self.url = ""
        self.records: list[tuple[dict[str, str], bool]] = []
        self.validator = RequestValidator(TOKEN)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/status/{name}")
        async def status(name: str, request: Request) -> Response:
            form = await request.form()
            signature = request.headers.get("X-Twilio-Signature", "")
            valid = self.validator.validate(str(request.url), form, signature)
            self.records.append(({k: str(v) for k, v in form.items()}, valid))
            return Response(status_code=204 if valid else 403)

        return app

    def statuses(self) -> list[str]:
        return [params["CallStatus"] for params, _ in self.records]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    async with serve_app(rx.app()) as url:
        rx.url = url
        yield rx


class EdgeStub:
    """A media websocket server standing for our edge: records what Twilio sends and,
    when `echo`, plays each inbound frame straight back."""

    def __init__(self, echo: bool = False, refuse: bool = False) -> None:
        self.echo = echo
        self.refuse = refuse
        self.url = ""
        self.events: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.headers: dict[str, str] = {}
        self.connection: ServerConnection | None = None
        self.closed = asyncio.Event()

    def check(self, connection: ServerConnection, request: WsRequest) -> WsResponse | None:
        self.headers = dict(request.headers.raw_items())
        return connection.respond(403, "no\n") if self.refuse else None

    async def handle(self, connection: ServerConnection) -> None:
        self.connection = connection
        loop = asyncio.get_running_loop()
        try:
            async for raw in connection:
                message = json.loads(raw)
                self.events.append(message)
                self.times.append(loop.time())
                if self.echo and message["event"] == "media":
                    await self.send(
                        {
                            "event": "media",
                            "streamSid": message["streamSid"],
                            "media": {"payload": message["media"]["payload"]},
                        }
                    )
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.connection is not None
        await self.connection.send(json.dumps(message))

    def kinds(self, include_media: bool = False) -> list[str]:
        return [e["event"] for e in self.events if include_media or e["event"] != "media"]

    def media(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "media"]


@asynccontextmanager
async def edge_stub(**options: bool) -> AsyncIterator[EdgeStub]:
    edge = EdgeStub(**options)
    async with serve(edge.handle, "127.0.0.1", 0, process_request=edge.check) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        edge.url = f"ws://127.0.0.1:{port}/twilio/media/tr-1"
        yield edge


def sdk(standin: TwilioStandIn, token: str = TOKEN) -> Client:
    client = Client(ACCOUNT, token)
    client.api.base_url = standin.base_url
    return client


def twiml(url: str, token: str = "media-token") -> str:
    return (
        f'<Response><Connect><Stream url="{url}">'
        f'<Parameter name="token" value="{token}"/></Stream></Connect></Response>'
    )


async def create(
    client: Client, callback: str, twiml_text: str = "<Response/>", **extra: Any
) -> Any:
    extra.setdefault("to", "sip:1001@pbx.example.test")
    return await asyncio.to_thread(
        client.calls.create,
        from_="+15005550006",
        twiml=twiml_text,
        status_callback=callback,
        status_callback_event=EVENTS,
        status_callback_method="POST",
        timeout=20,
        **extra,
    )


async def answered_call(
    standin: TwilioStandIn, rx: Receiver, edge: EdgeStub
) -> tuple[StandInCall, int]:
    await create(sdk(standin), f"{rx.url}/status/tr-1", twiml(edge.url))
    call = await standin.wait_for_call(2)
    await standin.ring(call)
    code = await standin.answer(call)
    return call, code


def test_stand_in_codec_matches_audioop() -> None:
    every_sample = b"".join(s.to_bytes(2, "little", signed=True) for s in range(-32768, 32768))
    assert pcm_to_ulaw(every_sample) == audioop.lin2ulaw(every_sample, 2)
    assert ulaw_to_pcm(bytes(range(256))) == audioop.ulaw2lin(bytes(range(256)), 2)


async def test_sdk_call_is_recorded_and_callbacks_are_signed() -> None:
    async with TwilioStandIn(ACCOUNT, TOKEN) as standin, receiver() as rx:
        client = sdk(standin)
        created = await create(
            client,
            f"{rx.url}/status/tr-1",
            sip_auth_username="agent",
            sip_auth_password="secret",
        )
        assert created.sid.startswith("CA") and len(created.sid) == 34
        assert (created.status, created.direction) == ("queued", "outbound-api")
        assert created.account_sid == ACCOUNT and created.date_created is not None

        call = await standin.wait_for_call(2)
        assert call.sid == created.sid
        assert (call.to, call.from_, call.twiml) == (
            "sip:1001@pbx.example.test",
            "+15005550006",
            "<Response/>",
        )
        assert call.status_callback == f"{rx.url}/status/tr-1"
        assert call.status_callback_events == EVENTS
        assert (call.status_callback_method, call.timeout) == ("POST", 20)
        assert (call.sip_auth_username, call.sip_auth_password) == ("agent", "secret")

        assert await standin.ring(call) == 204
        assert rx.statuses() == ["initiated", "ringing"]
        params, _ = rx.records[1]
        assert params["AccountSid"] == ACCOUNT and params["CallSid"] == call.sid
        assert params["Direction"] == "outbound-api" and params["ApiVersion"] == "2010-04-01"
        assert params["CallbackSource"] == "call-progress-events"
        assert [p["SequenceNumber"] for p, _ in rx.records] == ["0", "1"]
        assert parsedate_to_datetime(params["Timestamp"]).tzinfo is not None

        fetched = await asyncio.to_thread(client.calls(call.sid).fetch)
        assert fetched.status == "ringing"
        updated = await asyncio.to_thread(client.calls(call.sid).update, status="canceled")
        assert updated.status == "canceled"
        await standin.wait_until(lambda: len(rx.records) == 3, timeout=2)
        final, _ = rx.records[2]
        assert (final["CallStatus"], final["CallDuration"]) == ("canceled", "0")
        assert all(valid for _, valid in rx.records)
        assert [c.status_code for c in call.callbacks] == [204, 204, 204]


async def test_calls_are_listed_newest_first_by_status_and_to() -> None:
    async with TwilioStandIn(ACCOUNT, TOKEN, auto_initiated=False) as standin:
        client = sdk(standin)
        first = await create(client, "http://127.0.0.1:9/cb")
        second = await create(client, "http://127.0.0.1:9/cb", to="sip:1002@pbx.example.test")
        await asyncio.to_thread(client.calls(first.sid).update, status="canceled")

        listed = await asyncio.to_thread(client.calls.list)
        assert [c.sid for c in listed] == [second.sid, first.sid]
        queued = await asyncio.to_thread(client.calls.list, status="queued")
        assert [c.sid for c in queued] == [second.sid]
        canceled = await asyncio.to_thread(client.calls.list, status="canceled")
        assert [(c.sid, c.to) for c in canceled] == [(first.sid, "sip:1001@pbx.example.test")]
        to_1002 = await asyncio.to_thread(client.calls.list, to="sip:1002@pbx.example.test")
        assert [c.sid for c in to_1002] == [second.sid]
        one = await asyncio.to_thread(client.calls.list, page_size=1, limit=1)
        assert [c.sid for c in one] == [second.sid]
        # The SDK reports a page it could not fetch as a TwilioException with the response.
        with pytest.raises(TwilioException) as refused:
            await asyncio.to_thread(sdk(standin, token="wrong").calls.list)
        assert "401" in str(refused.value)


async def test_rest_errors_reach_the_sdk_as_twilio_errors() -> None:
    async with TwilioStandIn(ACCOUNT, TOKEN) as standin:
        with pytest.raises(TwilioRestException) as refused:
            await create(sdk(standin, token="wrong"), "http://127.0.0.1:9/cb")
        assert (refused.value.status, refused.value.code) == (401, 20003)

        client = sdk(standin)
        with pytest.raises(TwilioRestException) as missing:
            await asyncio.to_thread(client.calls.create, to="sip:1@x", from_="+15005550006")
        assert (missing.value.status, missing.value.code) == (400, 21205)

        with pytest.raises(TwilioRestException) as unknown:
            await asyncio.to_thread(client.calls("CA" + "0" * 32).fetch)
        assert (unknown.value.status, unknown.value.code) == (404, 20404)

        standin.refuse_calls = (400, 13223, "Dial: Invalid phone number format")
        with pytest.raises(TwilioRestException) as injected:
            await create(client, "http://127.0.0.1:9/cb")
        assert (injected.value.status, injected.value.code) == (400, 13223)
        assert standin.calls == {}
        assert [status for _, _, status in standin.rest_log] == [401, 400, 404, 400]


async def test_forged_or_unsigned_callbacks_fail_validation() -> None:
    async with TwilioStandIn(ACCOUNT, TOKEN, auto_initiated=False) as standin, receiver() as rx:
        await create(sdk(standin), f"{rx.url}/status/tr-1")
        call = await standin.wait_for_call(2)
        params = standin.status_params(call, "in-progress")
        assert await standin.post_callback(call, params, signature=None) == 403
        assert await standin.post_callback(call, params, signature="AAAA") == 403
        forged = standin.validator.compute_signature(call.status_callback, params)
        tampered = {**params, "CallStatus": "completed"}
        assert await standin.post_callback(call, tampered, signature=forged) == 403
        other = RequestValidator("another-token").compute_signature(call.status_callback, params)
        assert await standin.post_callback(call, params, signature=other) == 403
        assert await standin.post_callback(call, params) == 204


async def test_unanswered_endings_report_sip_codes() -> None:
    async with TwilioStandIn(ACCOUNT, TOKEN) as standin, receiver() as rx:
        client = sdk(standin)
        await create(client, f"{rx.url}/status/busy")
        busy = await standin.wait_for_call(2)
        await standin.ring(busy)
        assert await standin.finish(busy, "busy") == 204
        await create(client, f"{rx.url}/status/failed")
        failed = await standin.wait_for_call(2)
        assert await standin.finish(failed, "failed", sip_response_code=503) == 204

        finals = {p["CallSid"]: p for p, _ in rx.records if p["CallStatus"] in ("busy", "failed")}
        assert finals[busy.sid]["SipResponseCode"] == "486"
        assert finals[busy.sid]["CallDuration"] == "0"
        assert finals[failed.sid]["SipResponseCode"] == "503"
        assert all(valid for _, valid in rx.records)
        with pytest.raises(CallStateError):
            await standin.answer(busy)


async def test_media_stream_order_echo_and_marks() -> None:
    async with (
        TwilioStandIn(ACCOUNT, TOKEN, idle_silence=False) as standin,
        receiver() as rx,
        edge_stub(echo=True) as edge,
    ):
        call, code = await answered_call(standin, rx, edge)
        assert code == 204 and call.stream_error is None
        await standin.wait_until(lambda: len(edge.events) >= 2, timeout=2)
        connected, start = edge.events[:2]
        assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        assert start["sequenceNumber"] == "1" and start["streamSid"].startswith("MZ")
        assert start["start"] == {
            "accountSid": ACCOUNT,
            "streamSid": start["streamSid"],
            "callSid": call.sid,
            "tracks": ["inbound"],
            "customParameters": {"token": "media-token"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        # The handshake carries a signature over the stream URL, as Twilio's does.
        assert rx.validator.validate(edge.url, {}, edge.headers["X-Twilio-Signature"])

        speech = tone(200)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await standin.send_audio(call, speech)
        assert loop.time() - began >= 0.17  # ten frames, paced in real time
        await standin.wait_until(lambda: len(edge.media()) == 10, timeout=2)
        frames = edge.media()
        assert [f["sequenceNumber"] for f in frames] == [str(n) for n in range(2, 12)]
        assert [f["media"]["chunk"] for f in frames] == [str(n) for n in range(1, 11)]
        stamps = [int(f["media"]["timestamp"]) for f in frames]
        assert all(b - a >= 20 for a, b in zip(stamps, stamps[1:], strict=False))
        assert {f["media"]["track"] for f in frames} == {"inbound"}
        inbound = b"".join(base64.b64decode(f["media"]["payload"]) for f in frames)
        assert inbound == audioop.lin2ulaw(speech, 2)

        # The echo plays for 200 ms; the mark after it comes back once that has played.
        await edge.send({"event": "mark", "streamSid": start["streamSid"], "mark": {"name": "m1"}})
        sent_at = loop.time()
        await standin.wait_until(lambda: "mark" in edge.kinds(), timeout=2)
        echoed = next(e for e in edge.events if e["event"] == "mark")
        assert echoed["mark"] == {"name": "m1"} and echoed["streamSid"] == start["streamSid"]
        assert edge.times[edge.events.index(echoed)] - began >= 0.19
        assert edge.times[edge.events.index(echoed)] >= sent_at
        assert (call.marks_received, call.marks_echoed) == (["m1"], ["m1"])
        expected = audioop.ulaw2lin(audioop.lin2ulaw(speech, 2), 2)
        assert standin.received_pcm(call) == expected
        assert standin.played_pcm(call) == expected

        assert await standin.hang_up(call) == 204
        await asyncio.wait_for(edge.closed.wait(), 2)
        assert edge.kinds() == ["connected", "start", "mark", "stop"]
        stop = edge.events[-1]
        assert stop["stop"] == {"accountSid": ACCOUNT, "callSid": call.sid}
        assert int(stop["sequenceNumber"]) == 13
        assert rx.statuses() == ["initiated", "ringing", "in-progress", "completed"]
        completed, _ = rx.records[-1]
        assert completed["SipResponseCode"] == "200" and "CallDuration" in completed
        assert all(valid for _, valid in rx.records)
        assert call.protocol_errors == [] and call.stream_closed_by == "twilio"


async def test_clear_drops_audio_and_returns_pending_marks_at_once() -> None:
    async with (
        TwilioStandIn(ACCOUNT, TOKEN, idle_silence=False) as standin,
        receiver() as rx,
        edge_stub() as edge,
    ):
        call, _ = await answered_call(standin, rx, edge)
        await standin.wait_until(lambda: len(edge.events) >= 2, timeout=2)
        sid = call.stream_sid
        second = base64.b64encode(b"\x80" * 8000).decode()  # 1 s of loud audio
        loop = asyncio.get_running_loop()
        began = loop.time()
        await edge.send({"event": "media", "streamSid": sid, "media": {"payload": second}})
        await edge.send({"event": "mark", "streamSid": sid, "mark": {"name": "reply"}})
        await asyncio.sleep(0.1)
        await edge.send({"event": "clear", "streamSid": sid})
        await standin.wait_until(lambda: call.marks_echoed == ["reply"], timeout=2)
        assert loop.time() - began < 0.8  # long before the 1 s would have played
        assert call.clears == 1
        assert len(standin.received_pcm(call)) == 16000
        assert 0 < len(standin.played_pcm(call)) < 16000

        # Our edge hanging up the stream ends the call, as <Connect> finishing does.
        assert edge.connection is not None
        await edge.connection.close()
        await standin.wait_until(lambda: call.status == "completed", timeout=2)
        await standin.wait_until(lambda: len(rx.records) == 4, timeout=2)
        assert rx.statuses()[-1] == "completed" and call.stream_closed_by == "edge"
        assert call.protocol_errors == []


async def test_refused_stream_ends_the_call() -> None:
    async with (
        TwilioStandIn(ACCOUNT, TOKEN) as standin,
        receiver() as rx,
        edge_stub(refuse=True) as edge,
    ):
        call, code = await answered_call(standin, rx, edge)
        assert code == 204
        assert call.stream_error is not None and "403" in call.stream_error
        assert call.status == "completed"
        assert rx.statuses() == ["initiated", "ringing", "in-progress", "completed"]
        with pytest.raises(CallStateError):
            await standin.send_audio(call, tone(20))


async def test_idle_stream_carries_silence_and_api_hang_up_stops_it() -> None:
    async with TwilioStandIn(ACCOUNT, TOKEN) as standin, receiver() as rx, edge_stub() as edge:
        call, _ = await answered_call(standin, rx, edge)
        await standin.wait_until(lambda: len(edge.media()) >= 5, timeout=2)
        assert {base64.b64decode(f["media"]["payload"]) for f in edge.media()} == {b"\xff" * 160}

        client = sdk(standin)
        updated = await asyncio.to_thread(client.calls(call.sid).update, status="completed")
        assert updated.status == "completed"
        await asyncio.wait_for(edge.closed.wait(), 2)
        assert edge.kinds()[-1] == "stop"
        await standin.wait_until(lambda: len(rx.records) == 4, timeout=2)
        assert rx.statuses()[-1] == "completed" and call.stream_closed_by == "twilio"
