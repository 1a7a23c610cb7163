"""A local Deepgram: the live transcription websocket (`/v1/listen`) and the Aura streaming
speech websocket (`/v1/speak`), speaking the protocol Deepgram documents, scripted by tests.

It runs on 127.0.0.1 in its own thread and event loop, so any client reaches it by URL:
async tests, a worker process, the edge. Point the SDK at it with
`Settings(deepgram_api_key=standin.api_key, deepgram_base_url=standin.base_url)`.

Transcription: the test queues what the caller says, one final segment per entry
(`standin.transcripts.append("turn on the lights")`). Words are "heard" in proportion to
the audio received, `ms_per_word` each: interim Results grow word by word, a final Result
(is_final, speech_final) follows once the segment's words plus the requested endpointing
silence have arrived, and UtteranceEnd once `utterance_end_ms` more pass with no new word.
With `standin.noisy = True` finals come without speech_final, as when background noise
defeats endpointing: only UtteranceEnd then marks the end. Finalize and CloseStream
finalize the words heard so far; CloseStream then sends Metadata
and closes (1000). The queue outlives a connection, so a reconnecting client that resends
its unfinalized audio gets the rest of the script.

Speech: Speak texts accumulate; Flush answers with a 440 Hz linear16 tone of
`ms_per_char` per character at the requested sample rate, in 100 ms binary frames, then
Flushed; Clear answers Cleared; Close closes.

Failures to inject: `drop_next_listen`, `fail_next_listen`, `close_next_listen` (queued,
one per new `/v1/listen` connection), `warn_next_flush`, `drop_speak_connections`; a
wrong key is refused with HTTP 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

DEFAULT_API_KEY = "dg-standin-key-0123456789"
TONE_HZ = 440.0
TONE_AMPLITUDE = 8000
AUDIO_FRAME_MS = 100


@dataclass
class ListenSession:
    """One `/v1/listen` connection as the stand-in saw it."""

    query: dict[str, list[str]]
    audio: bytearray = field(default_factory=bytearray)
    # Client text messages by type, in order: KeepAlive, Finalize, CloseStream.
    controls: list[str] = field(default_factory=list)
    # Server messages by type, in order: Results, UtteranceEnd, Metadata, Error.
    sent: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)


@dataclass
class SpeakSession:
    """One `/v1/speak` connection as the stand-in saw it."""

    query: dict[str, list[str]]
    texts: list[str] = field(default_factory=list)
    # Client control messages by type, in order: Flush, Clear, Close.
    controls: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _ListenFailure:
    after_ms: int
    kind: Literal["drop", "error", "close"]
    code: int = 1011
    reason: str = ""
    description: str = ""


def _first(query: dict[str, list[str]], name: str, default: str) -> str:
    return query.get(name, [default])[0]


class _Transcriber:
    """Turns audio received on one connection into the scripted Results."""

    def __init__(
        self,
        script: deque[str],
        *,
        ms_per_word: int,
        bytes_per_ms: int,
        endpointing_ms: int,
        utterance_end_ms: int | None,
        noisy: bool,
        model: str,
    ) -> None:
        self.script = script
        self.ms_per_word = ms_per_word
        self.bytes_per_ms = bytes_per_ms
        self.endpointing_ms = endpointing_ms
        self.utterance_end_ms = utterance_end_ms
        self.noisy = noisy
        self.metadata = {
            "request_id": str(uuid.uuid4()),
            "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, model)),
            "model_info": {"name": model, "version": "standin", "arch": "standin"},
        }
        self.heard_bytes = 0
        self.segment_start_ms = 0.0
        self.words_sent = 0
        self.last_word_end_ms: float | None = None

    @property
    def heard_ms(self) -> float:
        return self.heard_bytes / self.bytes_per_ms

    def hear(self, size: int) -> list[dict[str, Any]]:
        self.heard_bytes += size
        out: list[dict[str, Any]] = []
        while self.script:
            words = self.script[0].split()
            elapsed = self.heard_ms - self.segment_start_ms
            heard = min(len(words), int(elapsed // self.ms_per_word))
            if heard > self.words_sent:
                self.words_sent = heard
                self.last_word_end_ms = self.segment_start_ms + heard * self.ms_per_word
                out.append(self._results(words[:heard], elapsed, is_final=False))
            segment_ms = len(words) * self.ms_per_word + self.endpointing_ms
            if elapsed < segment_ms:
                break
            final = self._results(words, segment_ms, is_final=True, speech_final=not self.noisy)
            out.append(final)
            self.script.popleft()
            self.segment_start_ms += segment_ms
            self.words_sent = 0
        if (
            self.utterance_end_ms is not None
            and self.last_word_end_ms is not None
            and self.heard_ms - self.last_word_end_ms >= self.utterance_end_ms
        ):
            out.append(
                {
                    "type": "UtteranceEnd",
                    "channel": [0, 1],
                    "last_word_end": round(self.last_word_end_ms / 1000, 3),
                }
            )
            self.last_word_end_ms = None
        return out

    def finalize(self, *, from_finalize: bool) -> list[dict[str, Any]]:
        """Finals for the words heard in the current segment; the rest stays scripted."""
        if not self.script or not self.words_sent:
            return []
        words = self.script[0].split()
        elapsed = self.heard_ms - self.segment_start_ms
        out = [self._results(words[: self.words_sent], elapsed, is_final=True)]
        out[0]["from_finalize"] = from_finalize
        rest = words[self.words_sent :]
        if rest:
            self.script[0] = " ".join(rest)
        else:
            self.script.popleft()
        self.segment_start_ms = self.heard_ms
        self.words_sent = 0
        return out

    def _results(
        self, words: list[str], duration_ms: float, *, is_final: bool, speech_final: bool = False
    ) -> dict[str, Any]:
        start = self.segment_start_ms
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(duration_ms / 1000, 3),
            "start": round(start / 1000, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {
                "alternatives": [
                    {
                        "transcript": " ".join(words),
                        "confidence": 0.99,
                        "words": [
                            {
                                "word": word.lower().strip(".,?!"),
                                "start": round((start + i * self.ms_per_word) / 1000, 3),
                                "end": round((start + (i + 1) * self.ms_per_word) / 1000, 3),
                                "confidence": 0.99,
                                "punctuated_word": word,
                            }
                            for i, word in enumerate(words)
                        ],
                    }
                ]
            },
            "metadata": self.metadata,
        }


def tone(ms: float, sample_rate: int) -> bytes:
    """The stand-in's "speech": a steady 440 Hz linear16 tone."""
    samples = np.arange(round(sample_rate * ms / 1000))
    wave = TONE_AMPLITUDE * np.sin(2 * math.pi * TONE_HZ * samples / sample_rate)
    return wave.astype("<i2").tobytes()


class DeepgramStandIn:
    """Start with `start()` or `with DeepgramStandIn() as standin:`; see the module doc."""

    def __init__(
        self, api_key: str = DEFAULT_API_KEY, *, ms_per_word: int = 200, ms_per_char: int = 40
    ) -> None:
        self.api_key = api_key
        self.ms_per_word = ms_per_word
        self.ms_per_char = ms_per_char
        self.noisy = False
        self.transcripts: deque[str] = deque()
        self.listen_sessions: list[ListenSession] = []
        self.speak_sessions: list[SpeakSession] = []
        self._listen_failures: deque[_ListenFailure] = deque()
        self._flush_warning: tuple[str, str] | None = None
        self._sessions: dict[ServerConnection, ListenSession | SpeakSession] = {}
        self._open_speak: set[ServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DeepgramStandIn:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="deepgram-standin", daemon=True
        )
        self._thread.start()
        self._server = self._call(self._serve())
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> DeepgramStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- failure injection -----------------------------------------------------------------

    def drop_next_listen(self, after_ms: int) -> None:
        """The next `/v1/listen` connection loses its TCP link (no close frame) once it
        has received `after_ms` of audio."""
        self._listen_failures.append(_ListenFailure(after_ms, "drop"))

    def fail_next_listen(self, after_ms: int, description: str) -> None:
        """The next `/v1/listen` connection sends an Error message, then closes (1011)."""
        self._listen_failures.append(
            _ListenFailure(after_ms, "error", reason="NET-0000", description=description)
        )

    def close_next_listen(self, after_ms: int, code: int, reason: str) -> None:
        """The next `/v1/listen` connection closes with Deepgram's close frame, e.g. 1008
        "DATA-0000" for audio it cannot decode."""
        self._listen_failures.append(_ListenFailure(after_ms, "close", code=code, reason=reason))

    def warn_next_flush(self, code: str, description: str) -> None:
        """The next Flush is answered with a Warning instead of audio and Flushed, as
        Deepgram does past its flush rate limit."""
        self._flush_warning = (code, description)

    def drop_speak_connections(self) -> None:
        """Every open `/v1/speak` connection loses its TCP link now."""
        self._call(self._abort_speak())

    # -- server ----------------------------------------------------------------------------

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(5)

    async def _serve(self) -> Server:
        return await serve(
            self._handle, "127.0.0.1", 0, process_request=self._authorize, compression=None
        )

    async def _shutdown(self) -> None:
        # Abort rather than close: a client whose event loop is blocked (a sync fixture
        # stopping the stand-in) cannot answer a closing handshake.
        assert self._server is not None
        for connection in self._server.connections:
            connection.transport.abort()
        self._server.close()
        await self._server.wait_closed()

    async def _abort_speak(self) -> None:
        for connection in list(self._open_speak):
            connection.transport.abort()

    def _authorize(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path not in ("/v1/listen", "/v1/speak"):
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            return self._refuse(connection)
        # Recorded before the handshake completes, so a client that has connected can
        # always find its session.
        query = parse_qs(urlsplit(request.path).query, keep_blank_values=True)
        session: ListenSession | SpeakSession
        if path == "/v1/listen":
            session = ListenSession(query)
            self.listen_sessions.append(session)
        else:
            session = SpeakSession(query)
            self.speak_sessions.append(session)
        self._sessions[connection] = session
        return None

    def _refuse(self, connection: ServerConnection) -> Response:
        """Deepgram's answer to a bad key: HTTP 401 with a JSON body and dg-error."""
        body = {
            "err_code": "INVALID_AUTH",
            "err_msg": "Invalid credentials.",
            "request_id": str(uuid.uuid4()),
        }
        response = connection.respond(HTTPStatus.UNAUTHORIZED, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        response.headers["dg-error"] = body["err_msg"]
        response.headers["dg-request-id"] = body["request_id"]
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        session = self._sessions.pop(connection)
        try:
            if isinstance(session, ListenSession):
                await self._listen(connection, session)
            else:
                self._open_speak.add(connection)
                await self._speak(connection, session)
        except ConnectionClosed:
            pass
        finally:
            self._open_speak.discard(connection)
            session.ended.set()

    async def _listen(self, connection: ServerConnection, session: ListenSession) -> None:
        query = session.query
        endpointing = _first(query, "endpointing", "10")
        utterance_end = _first(query, "utterance_end_ms", "")
        bytes_per_ms = int(_first(query, "sample_rate", "16000")) * 2 // 1000
        transcriber = _Transcriber(
            self.transcripts,
            ms_per_word=self.ms_per_word,
            bytes_per_ms=bytes_per_ms,
            endpointing_ms=int(endpointing) if endpointing.isdigit() else 10,
            utterance_end_ms=int(utterance_end) if utterance_end.isdigit() else None,
            noisy=self.noisy,
            model=_first(query, "model", "base"),
        )
        failure = self._listen_failures.popleft() if self._listen_failures else None

        async def send(messages: list[dict[str, Any]]) -> None:
            for message in messages:
                session.sent.append(message["type"])
                await connection.send(json.dumps(message))

        async for message in connection:
            if isinstance(message, bytes):
                session.audio += message
                if failure and len(session.audio) >= failure.after_ms * bytes_per_ms:
                    await self._fail(connection, session, failure)
                    return
                await send(transcriber.hear(len(message)))
                continue
            kind = json.loads(message).get("type", "")
            session.controls.append(kind)
            if kind == "Finalize":
                await send(transcriber.finalize(from_finalize=True))
            elif kind == "CloseStream":
                await send(transcriber.finalize(from_finalize=False))
                await send([self._listen_metadata(session, transcriber)])
                await connection.close(1000)
                return

    async def _fail(
        self, connection: ServerConnection, session: ListenSession, failure: _ListenFailure
    ) -> None:
        if failure.kind == "drop":
            connection.transport.abort()
            return
        if failure.kind == "error":
            session.sent.append("Error")
            error = {
                "type": "Error",
                "variant": "Error",
                "description": failure.description,
                "message": "",
            }
            await connection.send(json.dumps(error))
        await connection.close(failure.code, failure.reason)

    def _listen_metadata(self, session: ListenSession, transcriber: _Transcriber) -> dict[str, Any]:
        model_uuid = transcriber.metadata["model_uuid"]
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": transcriber.metadata["request_id"],
            "sha256": hashlib.sha256(session.audio).hexdigest(),
            "created": datetime.now(UTC).isoformat(),
            "duration": round(transcriber.heard_ms / 1000, 3),
            "channels": 1,
            "models": [model_uuid],
            "model_info": {model_uuid: transcriber.metadata["model_info"]},
        }

    async def _speak(self, connection: ServerConnection, session: SpeakSession) -> None:
        sample_rate = int(_first(session.query, "sample_rate", "24000"))
        model = _first(session.query, "model", "aura-2-thalia-en")
        await connection.send(
            json.dumps(
                {
                    "type": "Metadata",
                    "request_id": str(uuid.uuid4()),
                    "model_name": model,
                    "model_version": "standin",
                    "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, model)),
                }
            )
        )
        pending: list[str] = []
        sequence = 0
        async for message in connection:
            data = json.loads(message)
            kind = data.get("type", "")
            if kind == "Speak":
                session.texts.append(data["text"])
                pending.append(data["text"])
                continue
            session.controls.append(kind)
            if kind == "Flush":
                text, pending = "".join(pending), []
                if self._flush_warning is not None:
                    (code, description), self._flush_warning = self._flush_warning, None
                    reply = {"type": "Warning", "code": code, "description": description}
                    await connection.send(json.dumps(reply))
                    continue
                audio = tone(len(text) * self.ms_per_char, sample_rate)
                frame = sample_rate * 2 * AUDIO_FRAME_MS // 1000
                for offset in range(0, len(audio), frame):
                    await connection.send(audio[offset : offset + frame])
                await connection.send(json.dumps({"type": "Flushed", "sequence_id": sequence}))
                sequence += 1
            elif kind == "Clear":
                pending = []
                await connection.send(json.dumps({"type": "Cleared", "sequence_id": sequence}))
            elif kind == "Close":
                await connection.close(1000)
                return
