"""Deepgram live streaming transcription: the production speech-to-text engine.

One websocket per utterance, opened through the official SDK. Audio goes out as it is fed;
a background task reads Results while the caller is still talking, so `feed()` never waits
on the network. A dropped connection is reopened once and the audio not yet covered by a
final result is sent again, so a network blip costs latency, not words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from deepgram.listen.v1 import ListenV1Error, ListenV1Results, ListenV1UtteranceEnd
from deepgram.listen.v1.socket_client import AsyncV1SocketClient
from websockets.exceptions import ConnectionClosed

from convonet.engines.deepgram_client import (
    connection_dropped,
    deepgram_client,
    describe_close,
    open_websocket,
)
from convonet.engines.stt.base import RecognitionStream, SpeechRecognizer, SttError, Vocabulary
from convonet.settings import Settings
from convonet.speech.audio import SAMPLE_BYTES, SAMPLE_RATE

log = logging.getLogger(__name__)

# Deepgram closes a stream that carried neither audio nor KeepAlive for 10 s (NET-0001);
# its docs advise a KeepAlive every 3-5 s.
KEEPALIVE_S = 4.0
# After CloseStream Deepgram sends the last finals and closes; this bounds the wait.
FINISH_TIMEOUT_S = 5.0
# UtteranceEnd needs at least 1000 ms (Deepgram's documented minimum).
UTTERANCE_END_MS = 1000
# Audio resent after a reconnect goes in 1 s messages, not one frame of up to a minute.
RESEND_CHUNK_BYTES = SAMPLE_RATE * SAMPLE_BYTES
# Keyterm prompting takes up to 100 terms and 500 tokens; words stand in for tokens.
MAX_KEYTERMS = 100
MAX_KEYTERM_WORDS = 250

Connect = Callable[[], AbstractAsyncContextManager[AsyncV1SocketClient]]


def _keyterms(vocabulary: Vocabulary) -> list[str]:
    terms: list[str] = []
    words = 0
    for phrase in dict.fromkeys(" ".join(p.split()) for p in vocabulary.phrases if p.strip()):
        words += len(phrase.split())
        if len(terms) == MAX_KEYTERMS or words > MAX_KEYTERM_WORDS:
            break
        terms.append(phrase)
    return terms


class DeepgramRecognizer(SpeechRecognizer):
    name = "deepgram"

    def __init__(
        self,
        settings: Settings,
        *,
        keepalive_s: float = KEEPALIVE_S,
        finish_timeout_s: float = FINISH_TIMEOUT_S,
    ) -> None:
        self._client = deepgram_client(settings)
        self._model = settings.deepgram_stt_model
        self._endpointing_ms = settings.deepgram_endpointing_ms
        self._keepalive_s = keepalive_s
        self._finish_timeout_s = finish_timeout_s

    async def open(self, vocabulary: Vocabulary) -> DeepgramRecognitionStream:
        terms = _keyterms(vocabulary)
        # Nova-3 takes multi-word `keyterm`s; older models only single-word `keywords`.
        nova3 = self._model.startswith("nova-3")
        keywords = list(dict.fromkeys(w for t in terms for w in t.split()))[:MAX_KEYTERMS]

        def connect() -> AbstractAsyncContextManager[AsyncV1SocketClient]:
            return self._client.listen.v1.connect(
                model=self._model,
                encoding="linear16",
                sample_rate=SAMPLE_RATE,
                channels=1,
                interim_results=True,
                endpointing=self._endpointing_ms,
                utterance_end_ms=UTTERANCE_END_MS,
                smart_format=True,
                keyterm=(terms or None) if nova3 else None,
                keywords=None if nova3 else (keywords or None),
            )

        stream = DeepgramRecognitionStream(
            connect, keepalive_s=self._keepalive_s, finish_timeout_s=self._finish_timeout_s
        )
        await stream.start()
        return stream


class DeepgramRecognitionStream(RecognitionStream):
    """One utterance on one Deepgram live websocket (two if it had to reconnect)."""

    def __init__(self, connect: Connect, *, keepalive_s: float, finish_timeout_s: float) -> None:
        self._connect = connect
        self._keepalive_s = keepalive_s
        self._finish_timeout_s = finish_timeout_s
        self._connection: AsyncExitStack | None = None
        # None while reconnecting: feed() then only buffers, and the receiver resends.
        self._socket: AsyncV1SocketClient | None = None
        # Orders sends so a resent buffer always precedes audio fed after it.
        self._send_lock = asyncio.Lock()
        # Audio not yet covered by a final result, and where it starts in the utterance.
        self._unfinalized = bytearray()
        self._unfinalized_start = 0
        # Where the current connection's audio starts in the utterance (Deepgram's time 0).
        self._connection_start = 0
        self._finals: list[str] = []
        self._interim = ""
        self._reported = ""
        self._speech_ended = False
        self._reconnected = False
        self._finishing = False
        self._closed = False
        self._last_sent = time.monotonic()
        self._receiver: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None

    @property
    def speech_ended(self) -> bool:
        """Deepgram heard the caller stop (speech_final or UtteranceEnd) and nothing since."""
        return self._speech_ended

    async def start(self) -> None:
        self._connection, self._socket = await self._open()
        self._last_sent = time.monotonic()
        self._receiver = asyncio.create_task(self._receive())
        self._keepalive = asyncio.create_task(self._keep_alive())

    async def feed(self, pcm: bytes) -> str | None:
        self._raise_if_failed()
        if pcm:  # an empty binary frame would make Deepgram close the stream
            self._unfinalized += pcm
            await self._send(lambda socket: socket.send_media(pcm))
        text = " ".join([*self._finals, self._interim]).strip()
        if not text or text == self._reported:
            return None
        self._reported = text
        return text

    async def finish(self) -> str:
        assert self._receiver is not None, "open() starts every stream"
        if not self._finishing:
            self._finishing = True
            await self._send(lambda socket: socket.send_close_stream())
        try:
            await asyncio.wait_for(self._receiver, self._finish_timeout_s)
        except TimeoutError:
            raise SttError(
                f"Deepgram sent no final transcript within {self._finish_timeout_s:g} s"
            ) from None
        finally:
            await self.aclose()
        return " ".join(self._finals)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [task for task in (self._keepalive, self._receiver) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._socket = None
        await self._close_connection()

    async def _open(self) -> tuple[AsyncExitStack, AsyncV1SocketClient]:
        stack = AsyncExitStack()
        socket = await open_websocket(stack, self._connect(), SttError)
        return stack, socket

    async def _close_connection(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(ConnectionClosed, OSError):
                await connection.aclose()

    async def _send(self, send: Callable[[AsyncV1SocketClient], Awaitable[None]]) -> None:
        async with self._send_lock:
            if self._socket is None:
                return
            try:
                await send(self._socket)
            except ConnectionClosed:
                return  # the receiver sees the drop too, reconnects and resends the buffer
            self._last_sent = time.monotonic()

    def _raise_if_failed(self) -> None:
        if self._closed:
            raise SttError("the recognition stream is closed")
        if self._receiver is not None and self._receiver.done():
            self._receiver.result()  # re-raises the receiver's SttError

    async def _receive(self) -> None:
        while True:
            socket = self._socket
            assert socket is not None
            try:
                while True:
                    self._handle(await socket.recv())
            except ConnectionClosed as closed:
                done = closed.rcvd is not None and closed.rcvd.code == 1000
                if self._finishing and done:
                    return
                if self._reconnected or not connection_dropped(closed):
                    raise SttError(describe_close(closed)) from None
            await self._reconnect()

    async def _reconnect(self) -> None:
        log.warning("Deepgram live stream dropped; reconnecting once")
        self._reconnected = True
        self._socket = None
        await self._close_connection()
        self._connection, socket = await self._open()
        async with self._send_lock:
            # The new connection starts its clock at the first byte we resend.
            self._connection_start = self._unfinalized_start
            self._interim = ""
            try:
                for offset in range(0, len(self._unfinalized), RESEND_CHUNK_BYTES):
                    chunk = self._unfinalized[offset : offset + RESEND_CHUNK_BYTES]
                    await socket.send_media(bytes(chunk))
                if self._finishing:
                    await socket.send_close_stream()
            except ConnectionClosed as closed:
                raise SttError(describe_close(closed)) from None
            self._socket = socket
            self._last_sent = time.monotonic()

    def _handle(self, message: object) -> None:
        if isinstance(message, ListenV1Results):
            alternatives = message.channel.alternatives
            transcript = alternatives[0].transcript.strip() if alternatives else ""
            if message.is_final:
                if transcript:
                    self._finals.append(transcript)
                self._interim = ""
                self._forget_audio_until(message.start + message.duration)
            else:
                self._interim = transcript
                if transcript:
                    self._speech_ended = False
            if message.speech_final:
                self._speech_ended = True
        elif isinstance(message, ListenV1UtteranceEnd):
            self._speech_ended = True
        elif isinstance(message, ListenV1Error):
            raise SttError(f"Deepgram error: {message.variant}: {message.description}")

    def _forget_audio_until(self, seconds: float) -> None:
        """Drops buffered audio that a final result covers; it never needs resending."""
        end = self._connection_start + round(seconds * SAMPLE_RATE) * SAMPLE_BYTES
        drop = min(end - self._unfinalized_start, len(self._unfinalized))
        if drop > 0:
            del self._unfinalized[:drop]
            self._unfinalized_start += drop

    async def _keep_alive(self) -> None:
        while not self._finishing:
            idle = time.monotonic() - self._last_sent
            if idle < self._keepalive_s:
                await asyncio.sleep(self._keepalive_s - idle)
                continue
            await self._send(lambda socket: socket.send_keep_alive())
            self._last_sent = time.monotonic()  # also while reconnecting: no busy loop
