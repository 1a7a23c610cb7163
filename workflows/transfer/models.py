"""Typed payloads of the transfer child workflow: its input, the agent leg's events, its
progress and its outcome. Ids, names and small facts only; never audio or credentials."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from workflows.conversation.models import Caller

TRANSCRIPT_FOR_AGENT = 20


class TransferState(StrEnum):
    REQUESTED = "requested"
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    BRIDGED = "bridged"
    ENDED = "ended"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TransferState.ENDED, TransferState.FAILED)


class FailureReason(StrEnum):
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    REJECTED = "rejected"
    NO_AGENT = "no-agent"
    ERROR = "error"


class LegStatus(StrEnum):
    """What the agent leg reports: Twilio status callbacks, or the dashboard's buttons."""

    RINGING = "ringing"
    ANSWERED = "answered"
    # The agent's audio reached the edge: caller and agent hear each other.
    BRIDGED = "bridged"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    DECLINED = "declined"
    FAILED = "failed"
    COMPLETED = "completed"


class LegEvent(BaseModel):
    status: LegStatus
    # The leg it is about (a Twilio call SID or a built-in ring id); events of other legs
    # (a late callback of an earlier attempt) are ignored.
    leg_id: str = Field("", max_length=64)
    detail: str = Field("", max_length=200)


class HandOffLine(BaseModel):
    role: str
    text: str


class TransferInput(BaseModel):
    transfer_id: str
    conversation_id: str
    parent_workflow_id: str
    call_record_id: int
    department: str
    reason: str = ""
    caller: Caller
    transcript: list[HandOffLine] = Field(default_factory=list)
    ring_timeout_s: int = 30
    connect_timeout_s: int = 15


class TransferProgress(BaseModel):
    """Where the transfer is: signalled to the parent at each change, and the child's
    result once it is ended or failed."""

    transfer_id: str
    state: TransferState
    department: str
    agent_name: str = ""
    # Set when failed: one of FailureReason; or why it ended ("agent-hung-up", ...).
    reason: str = ""


class RouteResult(BaseModel):
    agent_id: int | None = None
    agent_name: str = ""
    extension: str = ""
