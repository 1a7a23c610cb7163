"""Picking the one row a tool argument points at, by number or by words from its text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from convonet.services import speech
from convonet.services.errors import Refusal

T = TypeVar("T")

# Integer primary keys are 32-bit; a larger number from the LLM must read as "not found",
# not as a database error.
_MAX_ROW_ID = 2**31 - 1
# Enough candidates to tell "one", "several" and "none" apart without loading everything.
_CANDIDATES = 25


def is_row_id(value: int) -> bool:
    return 0 < value <= _MAX_ROW_ID


def choose(
    candidates: Sequence[T],
    words: str,
    text_of: Callable[[T], str],
    id_of: Callable[[T], object],
    noun: str,
) -> T:
    """The single candidate matching `words`; an exact title wins over partial matches."""
    if not candidates:
        article = "an" if noun[0] in "aeiou" else "a"
        raise Refusal(f"I couldn't find {article} {noun} matching {speech.clean(words, 40)}.")
    exact = [c for c in candidates if text_of(c).casefold() == words.casefold()]
    if len(exact) == 1:
        return exact[0]
    if len(candidates) == 1:
        return candidates[0]
    titles = [speech.clean(text_of(c), 40) for c in candidates[:3]]
    raise Refusal(
        f"Which {noun} do you mean: {speech.either(titles)}?",
        {"candidates": [{"id": id_of(c), "text": text_of(c)} for c in candidates[:3]]},
    )


async def pick_row(
    session: AsyncSession,
    visible: Select[T],
    id_column: InstrumentedAttribute[int],
    text_column: InstrumentedAttribute[str],
    row_id: int | None,
    words: str | None,
    noun: str,
) -> T:
    """One row of `visible`, by id or by case-insensitive words from its text.

    A row outside `visible` is reported exactly like a missing one, so ids don't leak.
    """
    if row_id is not None:
        row = None
        if is_row_id(row_id):
            row = (await session.scalars(visible.where(id_column == row_id))).first()
        if row is None:
            raise Refusal(f"I couldn't find that {noun}.")
        return row
    if not words:
        raise Refusal(f"Which {noun} do you mean?")
    query = visible.where(text_column.icontains(words, autoescape=True))
    rows = list(await session.scalars(query.order_by(id_column).limit(_CANDIDATES)))
    return choose(
        rows,
        words,
        lambda row: str(getattr(row, text_column.key)),
        lambda row: getattr(row, id_column.key),
        noun,
    )
