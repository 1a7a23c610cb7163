"""The one way a service declines to act: raise `Refusal`, the dispatcher turns it into ok=False."""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """A tool could not or may not act. `say` is one short sentence, safe to speak."""

    def __init__(self, say: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(say)
        self.say = say
        self.data = data or {}
