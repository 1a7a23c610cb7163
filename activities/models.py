"""Typed inputs and outputs of the non-graph activities."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from workflows.conversation.models import Caller


class PinOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    EXPIRED = "expired"


class VerifyPinInput(BaseModel):
    conversation_id: str
    pin_token: str
    client_address: str
    session_digest: str


class VerifyPinResult(BaseModel):
    outcome: PinOutcome
    caller: Caller | None = None
    locked_for_s: int = 0


class CloseSessionInput(BaseModel):
    conversation_id: str
