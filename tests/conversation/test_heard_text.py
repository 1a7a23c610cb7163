"""What the caller heard of a reply they interrupted, from the spoken sentences' offsets."""

from __future__ import annotations

from activities.models import SpeakResult, SpokenSentence
from workflows.conversation.workflow import _heard_text

RESULT = SpeakResult(
    sentences=[
        SpokenSentence(text="You have four todos.", start_ms=0),
        SpokenSentence(
            text="Buy milk, walk the dog, water the plants and pay the rent.", start_ms=1000
        ),
    ],
    audio_ms=3000,
)


def test_whole_sentences_before_the_interruption_are_heard() -> None:
    assert _heard_text(RESULT, 1000) == "You have four todos."


def test_the_sentence_playing_is_cut_in_proportion() -> None:
    # Half of the second sentence (1 s of its 2 s) had played.
    assert _heard_text(RESULT, 2000) == "You have four todos. Buy milk, walk the dog, water"


def test_nothing_and_everything() -> None:
    assert _heard_text(RESULT, 0) == ""
    assert _heard_text(RESULT, 5000) == " ".join(s.text for s in RESULT.sentences)
