"""Reply text is cut into sentences as it streams, so speech starts before the reply ends."""

from __future__ import annotations

from convonet.speech.sentences import MAX_CHARS, SentenceBuffer


def test_sentences_complete_as_deltas_arrive() -> None:
    buffer = SentenceBuffer()
    assert buffer.push("You have three todos") == []
    assert buffer.push(": buy milk, walk the dog. And ") == [
        "You have three todos: buy milk, walk the dog."
    ]
    assert buffer.push("Dr. Smith called at 3.5 past! Anything else?") == [
        "And Dr. Smith called at 3.5 past!"
    ]
    assert buffer.flush() == ["Anything else?"]
    assert buffer.flush() == []


def test_a_long_clause_without_punctuation_is_cut() -> None:
    buffer = SentenceBuffer()
    sentences = buffer.push("word " * 100)
    assert sentences and all(len(s) <= MAX_CHARS + 1 for s in sentences)
    assert " ".join([*sentences, *buffer.flush()]).split() == ["word"] * 100
