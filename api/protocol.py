"""Typed Socket.IO protocol of the caller namespace (documented in docs/socket-protocol.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.conversation.models import ConversationState, ToolCallSummary, TransferRequest

NAMESPACE = "/caller"


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


class HangUpIn(ClientMessage):
    pass


class ErrorOut(BaseModel):
    code: Literal["bad_request", "not_authenticated", "rejected", "unavailable", "internal"]
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


class Ack(BaseModel):
    """What every client event's acknowledgement carries."""

    ok: bool
    data: dict[str, Any] | None = None
    error: ErrorOut | None = None
