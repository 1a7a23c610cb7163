"""Deepgram Aura streaming synthesis: the production text-to-speech engine.

One websocket, opened through the official SDK, serves every sentence of a call: the
handshake is paid once, so each sentence's first audio comes back in one round trip. A
sentence is sent as Speak + Flush and its audio streams back until Deepgram says Flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack

from deepgram.speak.v1 import SpeakV1Text
from deepgram.speak.v1.socket_client import AsyncV1SocketClient
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed

from convonet.engines.deepgram_client import (
    connection_dropped,
    deepgram_client,
    describe_close,
    open_websocket,
)
from convonet.engines.tts.base import SpeechSynthesizer, TtsError
from convonet.settings import Settings
from convonet.speech.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

# Longest silence tolerated between two messages of one sentence before giving up on it.
RECEIVE_TIMEOUT_S = 10.0


def _message_type(message: object) -> str | None:
    # The SDK parses unknown types (Cleared, Error) into whichever model fits, or a dict;
    # only the "type" field is reliable.
    if isinstance(message, dict):
        kind = message.get("type")
    else:
        kind = getattr(message, "type", None)
    return kind if isinstance(kind, str) else None


def _describe(message: object) -> str:
    fields = message.model_dump() if isinstance(message, BaseModel) else message
    if not isinstance(fields, dict):
        return str(message)
    code = fields.get("code") or fields.get("err_code") or ""
    text = fields.get("description") or fields.get("err_msg") or ""
    return f"{code}: {text}" if code else str(text)


class DeepgramSynthesizer(SpeechSynthesizer):
    name = "deepgram"

    def __init__(self, settings: Settings) -> None:
        self._client = deepgram_client(settings)
        self._model = settings.deepgram_tts_model
        self._connection: AsyncExitStack | None = None
        self._socket: AsyncV1SocketClient | None = None
        # One sentence at a time: audio on the shared socket is not labelled by sentence.
        self._lock = asyncio.Lock()
        # Set after a sentence was abandoned mid-stream: its leftover audio must be skipped.
        self._awaiting_cleared = False

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """Closing the generator early (barge-in) clears the sentence's remaining audio."""
        if not text.strip():
            return
        async with self._lock:
            delivered = finished = False
            try:
                for attempt in range(2):
                    try:
                        socket = await self._ready_socket()
                        await socket.send_text(SpeakV1Text(type="Speak", text=text))
                        await socket.send_flush()
                        async for chunk in self._audio(socket):
                            delivered = True
                            yield chunk
                        finished = True
                        return
                    except ConnectionClosed as closed:
                        await self._disconnect()
                        # Before any audio the sentence can simply be sent again, once.
                        if delivered or attempt == 1 or not connection_dropped(closed):
                            raise TtsError(describe_close(closed)) from None
                        log.warning("Deepgram TTS connection dropped; reconnecting")
            finally:
                if not finished:
                    await self._clear()

    async def aclose(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._socket.send_close()
        await self._disconnect()

    async def _ready_socket(self) -> AsyncV1SocketClient:
        if self._socket is None:
            stack = AsyncExitStack()
            connected = await open_websocket(
                stack,
                self._client.speak.v1.connect(
                    model=self._model, encoding="linear16", sample_rate=SAMPLE_RATE
                ),
                TtsError,
            )
            self._connection, self._socket = stack, connected
        socket = self._socket
        while self._awaiting_cleared:
            message = await self._receive(socket)
            self._awaiting_cleared = _message_type(message) != "Cleared"
        return socket

    async def _audio(self, socket: AsyncV1SocketClient) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive(socket)
            if isinstance(message, bytes):
                if message:
                    yield message
                continue
            kind = _message_type(message)
            if kind == "Flushed":
                return
            if kind in ("Warning", "Error"):
                raise TtsError(f"Deepgram TTS {kind.lower()}: {_describe(message)}")

    async def _receive(self, socket: AsyncV1SocketClient) -> object:
        try:
            return await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT_S)
        except TimeoutError:
            await self._disconnect()
            raise TtsError(f"Deepgram TTS sent nothing for {RECEIVE_TIMEOUT_S:g} s") from None

    async def _clear(self) -> None:
        """Stops the audio of an abandoned sentence (barge-in, error) so the next one
        starts clean: Deepgram answers Clear with Cleared after its last chunk."""
        if self._socket is None:
            return
        try:
            await self._socket.send_clear()
        except ConnectionClosed:
            await self._disconnect()
            return
        self._awaiting_cleared = True

    async def _disconnect(self) -> None:
        self._socket = None
        self._awaiting_cleared = False
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(ConnectionClosed, OSError):
                await connection.aclose()
