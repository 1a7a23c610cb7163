"""Typed payloads of the conversation workflow: its input, updates, queries and results.

Nothing here carries audio, PINs or session tokens; the history stays small and safe to show.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from convonet.speech.timings import TurnTimings

WORKFLOW_ID_PREFIX = "conversation-"
MAX_TURN_CHARS = 2000
MEMORY_TURNS = 10
TRANSCRIPT_LIMIT = 60


def workflow_id_for(conversation_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{conversation_id}"


class ConversationState(StrEnum):
    AWAITING_AUTH = "awaiting-auth"
    ACTIVE = "active"
    TRANSFERRING = "transferring"
    BRIDGED = "bridged"
    ENDED = "ended"


class Caller(BaseModel):
    user_id: int
    name: str
    timezone: str = "UTC"


class TranscriptEntry(BaseModel):
    role: str  # "user", "assistant" or "system"
    text: str
    turn: int
    # Spoken replies only: latency figures, and what the caller heard before barging in.
    timings: TurnTimings | None = None
    heard: str | None = None


class TransferRequest(BaseModel):
    department: str
    reason: str = ""
    extension: str = ""
    call_record_id: int | None = None
    # Filled in as the transfer's child workflow reports progress.
    transfer_id: str = ""
    status: str = "requested"
    agent_name: str = ""
    # Why it failed or ended (no-answer, busy, agent-hung-up, ...).
    outcome: str = ""


class CarriedState(BaseModel):
    """Everything a conversation needs to go on after continue-as-new."""

    state: ConversationState = ConversationState.AWAITING_AUTH
    caller: Caller | None = None
    turn: int = 0
    pin_failures: int = 0
    memory: list[dict[str, Any]] = Field(default_factory=list)
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    transfer: TransferRequest | None = None
    transfers: int = 0
    # The department of the last transfer that failed: "try again" and messages go there.
    last_failed_department: str = ""
    outcome: str = ""
    runs: int = 1


class ConversationInput(BaseModel):
    conversation_id: str
    idle_timeout_s: int = 300
    max_pin_failures: int = 5
    # Continue-as-new once history passes this many events (tests lower it).
    continue_as_new_after_events: int = 2000
    ring_timeout_s: int = 30
    connect_timeout_s: int = 15
    carried: CarriedState | None = None


class ConversationStatus(BaseModel):
    conversation_id: str
    state: ConversationState
    caller_name: str | None = None
    turn: int = 0
    transfer: TransferRequest | None = None
    outcome: str = ""


class AuthRequest(BaseModel):
    # Redis key holding the PIN for a few seconds; the PIN itself never enters history.
    pin_token: str = Field(min_length=16, max_length=64)
    client_address: str = Field("", max_length=64)
    # Digest of the session token the edge will hand to the browser on success.
    session_digest: str = Field(min_length=64, max_length=64)


class AuthResult(BaseModel):
    ok: bool
    reason: str = ""
    greeting: str = ""
    caller_name: str | None = None
    attempts_left: int = 0
    state: ConversationState


TURN_KEY_PATTERN = r"^[ut][0-9a-f]{12}$"


class TurnRequest(BaseModel):
    text: str
    # Set when the reply is to be spoken: names the turn's Redis streams.
    speak_key: str | None = Field(None, pattern=TURN_KEY_PATTERN)


class VoiceTurnRequest(BaseModel):
    """An utterance the edge is streaming to Redis under `turn_key`; the workflow
    transcribes it, answers it and speaks the answer."""

    turn_key: str = Field(pattern=TURN_KEY_PATTERN)


class BargeIn(BaseModel):
    turn_key: str = Field(pattern=TURN_KEY_PATTERN)
    played_ms: int = Field(ge=0)


class ToolCallSummary(BaseModel):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    ok: bool = True
    say: str = ""


class TurnResult(BaseModel):
    turn: int
    user_text: str
    turn_key: str | None = None
    reply: str
    tool_calls: list[ToolCallSummary] = Field(default_factory=list)
    state: ConversationState
    transfer: TransferRequest | None = None
