"""Typed inputs and outputs of the non-graph activities."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from convonet.speech.timings import TurnTimings
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


class TranscribeInput(BaseModel):
    conversation_id: str
    turn_key: str
    user_id: int


class TranscribeResult(BaseModel):
    text: str
    audio_ms: int


class SpeakInput(BaseModel):
    conversation_id: str
    turn_key: str
    # Fixed text to speak; None means read the reply's text stream as the LLM writes it.
    text: str | None = None
    # Started when the caller started speaking: the text stream stays silent while they talk
    # and while the turn waits for the one before, so its silence counts as a stall only
    # once the reply has begun (without a reply, the workflow closes it or stops the speaker).
    started_early: bool = False


class ReplyTextInput(BaseModel):
    """A reply the workflow composed itself, for the speaker reading the turn's text stream."""

    conversation_id: str
    turn_key: str
    text: str


class SpokenSentence(BaseModel):
    text: str
    start_ms: int


class SpeakResult(BaseModel):
    sentences: list[SpokenSentence] = Field(default_factory=list)
    audio_ms: int = 0
    interrupted: bool = False
    timings: TurnTimings | None = None
