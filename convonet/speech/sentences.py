"""Cuts a stream of reply text into sentences, so speech can start before the reply ends."""

from __future__ import annotations

import re

# A sentence ends at . ! ? or ; followed by space, unless the word is a common abbreviation
# or a number like "3.5".
_END = re.compile(r"([.!?;])(\s+)")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "a.m", "p.m"}
# A very long clause without punctuation is spoken anyway, cut at a comma or space.
MAX_CHARS = 200


class SentenceBuffer:
    def __init__(self) -> None:
        self._pending = ""

    def push(self, delta: str) -> list[str]:
        """Adds text; returns the sentences it completed."""
        self._pending += delta
        sentences: list[str] = []
        start = 0
        for match in _END.finditer(self._pending):
            candidate = self._pending[start : match.end(1)]
            last_word = candidate.rstrip(".!?;").rsplit(maxsplit=1)[-1:] or [""]
            if match.group(1) == "." and last_word[0].lower() in _ABBREVIATIONS:
                continue
            if candidate.strip():
                sentences.append(candidate.strip())
            start = match.end()
        self._pending = self._pending[start:]
        while len(self._pending) > MAX_CHARS:
            cut = max(
                self._pending.rfind(",", 0, MAX_CHARS), self._pending.rfind(" ", 0, MAX_CHARS)
            )
            cut = cut if cut > 0 else MAX_CHARS
            sentences.append(self._pending[: cut + 1].strip())
            self._pending = self._pending[cut + 1 :]
        return sentences

    def flush(self) -> list[str]:
        """The text left once the reply is complete."""
        rest, self._pending = self._pending.strip(), ""
        return [rest] if rest else []
