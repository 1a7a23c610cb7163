"""The warm hand-off shown to an agent when a call rings: who is calling, their teams and
open todos, why they want a person, the AI conversation so far and its summary."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TodoLine(BaseModel):
    title: str
    due: str | None = None
    priority: str = "medium"


class CallerCard(BaseModel):
    name: str
    teams: list[str] = Field(default_factory=list)
    open_todos: list[TodoLine] = Field(default_factory=list)


class TranscriptLine(BaseModel):
    role: str
    text: str


class ScreenPop(BaseModel):
    transfer_id: str
    call_record_id: int
    conversation_id: str
    department: str
    reason: str = ""
    caller: CallerCard
    transcript: list[TranscriptLine] = Field(default_factory=list)
    summary: str = ""
    ring_timeout_s: int = 30
