"""Typed Socket.IO protocol of the caller namespace (documented in docs/socket-protocol.md)."""

from __future__ import annotations

import logging
from typing import Any, Literal

import socketio
from pydantic import BaseModel, ConfigDict, Field, StrictBytes, StrictInt, field_validator

from convonet.speech.timings import TurnTimings
from workflows.conversation.models import (
    TURN_KEY_PATTERN,
    ConversationState,
    ToolCallSummary,
    TransferRequest,
    TurnResult,
)

NAMESPACE = "/caller"
# Raised by python-socketio itself; a client never sends them.
LIFECYCLE_EVENTS = frozenset({"connect", "disconnect"})

log = logging.getLogger("convonet.api")


def storable_text(text: str) -> str:
    """Refuses NUL, which PostgreSQL text cannot hold: a clear error at the edge rather
    than a failed save further on."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectAuth(ClientMessage):
    """Optional `auth` of the Socket.IO connection: resume a logged-in conversation."""

    conversation_id: str | None = Field(None, max_length=64)
    session_token: str | None = Field(None, max_length=128)


class AuthenticateIn(ClientMessage):
    pin: str = Field(min_length=1, max_length=16)


class TextTurnIn(ClientMessage):
    text: str = Field(max_length=10_000)
    # Also speak the reply (the voice app does; `convonet call` need not).
    speak: bool = False

    # A turn quoting a NUL stalled on its tool's retries and ended in an apology.
    _storable = field_validator("text")(storable_text)


MicMode = Literal["hands_free", "push_to_talk"]


class MicIn(ClientMessage):
    open: bool
    mode: MicMode = "hands_free"


class MicStateOut(BaseModel):
    open: bool
    mode: MicMode | None = None


class AudioFrameIn(ClientMessage):
    """About 20 ms of 16 kHz 16-bit mono PCM, as a binary attachment."""

    seq: StrictInt = Field(ge=0)
    rate: StrictInt
    # Sizes are checked by the edge to answer with a precise message; this caps the parse.
    pcm: StrictBytes = Field(max_length=64_000)


class BargeInIn(ClientMessage):
    turn_key: str = Field(pattern=TURN_KEY_PATTERN)
    played_ms: StrictInt = Field(ge=0, le=3_600_000)


class TimingsOut(TurnTimings):
    turn_key: str


class HangUpIn(ClientMessage):
    pass


ErrorCode = Literal[
    "bad_request",
    "bad_audio",
    "rate_limited",
    "not_authenticated",
    "rejected",
    "unavailable",
    "internal",
]


class ErrorOut(BaseModel):
    code: ErrorCode
    message: str


class StatusOut(BaseModel):
    conversation_id: str
    state: ConversationState
    authenticated: bool
    caller_name: str | None = None
    transfer: TransferRequest | None = None


class AuthResultOut(BaseModel):
    ok: bool
    reason: str = ""
    greeting: str = ""
    caller_name: str | None = None
    attempts_left: int = 0
    session_token: str | None = None
    state: ConversationState


class ReplyOut(BaseModel):
    turn: int
    user: str
    assistant: str
    tool_calls: list[ToolCallSummary]
    state: ConversationState
    transfer: TransferRequest | None = None
    latency_ms: int
    turn_key: str | None = None

    @classmethod
    def of(cls, result: TurnResult, latency_ms: int) -> ReplyOut:
        return cls(
            turn=result.turn,
            user=result.user_text,
            assistant=result.reply,
            tool_calls=result.tool_calls,
            state=result.state,
            transfer=result.transfer,
            latency_ms=latency_ms,
            turn_key=result.turn_key,
        )


class Ack(BaseModel):
    """What every client event's acknowledgement carries."""

    ok: bool
    data: dict[str, Any] | None = None
    error: ErrorOut | None = None


class EventNamespace(socketio.AsyncNamespace):
    """Dispatches client events so that whatever a client sends is answered with an `Ack`.

    python-socketio calls `on_<name>` for any name a client sends (the lifecycle ones
    included), passes every extra argument on, and sends no acknowledgement at all when a
    handler raises. Here unknown or forged names, extra arguments and failing handlers get
    an error instead."""

    async def trigger_event(self, event: Any, *args: Any) -> Any:
        sid = args[0]
        name = event if isinstance(event, str) else ""
        if name in LIFECYCLE_EVENTS:
            # The server raises these while the client is connecting or disconnecting, when
            # it does not count as connected (python-socketio's default always_connect=False);
            # from a connected client they are forged.
            if not self.server.manager.is_connected(sid, self.namespace):
                return await super().trigger_event(name, *args)
            handler = None
        else:
            handler = getattr(self, f"on_{name}", None) if name else None
        if handler is None:
            return await self._fail(sid, "bad_request", "Unknown event.")
        if len(args) > 2:
            return await self._fail(sid, "bad_request", "Send one payload per event.")
        try:
            return await handler(*args)
        except Exception:
            log.exception("the %s handler of %s failed", name, self.namespace)
            return await self._fail(sid, "internal", "Something went wrong; try again.")

    async def _fail(self, sid: str, code: ErrorCode, message: str) -> dict[str, Any]:
        return Ack(ok=False, error=ErrorOut(code=code, message=message)).model_dump(mode="json")
