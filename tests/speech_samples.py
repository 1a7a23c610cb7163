"""Spoken test audio made on the spot with eSpeak, and the word error rate to score it."""

from __future__ import annotations

import re
from pathlib import Path

from convonet.engines.tts.espeak import EspeakSynthesizer
from convonet.speech.audio import silence, write_wav

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def speak(text: str, voice: str = "en-us", speed_wpm: int = 160) -> bytes:
    """`text` spoken as 16 kHz 16-bit mono PCM."""
    return EspeakSynthesizer(voice, speed_wpm).synthesize_pcm(text)


def utterance_wav(
    path: Path,
    text: str,
    voice: str = "en-us",
    lead_ms: int = 300,
    tail_ms: int = 800,
    speed_wpm: int = 160,
) -> Path:
    """A WAV of `text` with silence before and after, as a caller would send it."""
    write_wav(path, silence(lead_ms) + speak(text, voice, speed_wpm) + silence(tail_ms))
    return path


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length; case and punctuation ignored."""
    ref, hyp = _WORD.findall(reference.lower()), _WORD.findall(hypothesis.lower())
    if not ref:
        return 0.0 if not hyp else 1.0
    return _word_errors(ref, hyp) / len(ref)


def _word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions, insertions and deletions turning `reference` into `hypothesis`."""
    row = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        diagonal, row[0] = row[0], i
        for j, hyp_word in enumerate(hypothesis, 1):
            best = min(row[j] + 1, row[j - 1] + 1, diagonal + (ref_word != hyp_word))
            diagonal, row[j] = row[j], best
    return row[-1]
