"""A one-paragraph summary of the AI conversation for the agent who takes the call.

Built from the transcript, so it costs no model call and says only what was said."""

from __future__ import annotations

from collections.abc import Sequence

from convonet.screen_pop import TranscriptLine

MAX_CHARS = 700
_QUOTE = 90


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return f"“{text[: _QUOTE - 1]}…”" if len(text) > _QUOTE else f"“{text}”"


def summarize(
    caller_name: str, department: str, reason: str, transcript: Sequence[TranscriptLine]
) -> str:
    asked = [line.text for line in transcript if line.role == "user" and line.text.strip()]
    # The last request is the transfer itself; what came before is the context.
    earlier = asked[:-1] if asked else []
    parts = [f"{caller_name} asked the assistant to be put through to {department}"]
    if reason.strip() and (not asked or reason.strip() != asked[-1].strip()):
        parts[0] += f" ({_quote(reason)})"
    parts[0] += "."
    if earlier:
        shown = earlier[-4:]
        lead = "Earlier in the call they said " if len(earlier) <= 4 else "Most recently they said "
        parts.append(lead + "; ".join(_quote(text) for text in shown) + ".")
        replies = [line.text for line in transcript if line.role == "assistant"]
        if len(replies) >= 2:
            parts.append(f"The assistant's last answer before the transfer: {_quote(replies[-2])}.")
    else:
        parts.append("They asked for a person straight away.")
    summary = " ".join(parts)
    return summary if len(summary) <= MAX_CHARS else summary[: MAX_CHARS - 1] + "…"
