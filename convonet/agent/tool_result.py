"""What every tool returns to the LLM: a spoken summary plus structured data."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ToolResult(BaseModel):
    ok: bool
    # One short sentence the assistant can speak as is (the intent model does).
    say: str
    data: dict[str, Any] = Field(default_factory=dict)


def refused(say: str) -> ToolResult:
    return ToolResult(ok=False, say=say)
