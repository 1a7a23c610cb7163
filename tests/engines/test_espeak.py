"""eSpeak through ctypes: real 16 kHz speech, per-instance voices and rates, thread safety."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from convonet.engines.tts.base import TtsError
from convonet.engines.tts.espeak import EspeakSynthesizer
from convonet.speech.audio import SAMPLE_RATE, duration_ms, rms

SENTENCE = "Create a todo to buy milk tomorrow at ten."


async def _spoken(synthesizer: EspeakSynthesizer, text: str = SENTENCE) -> bytes:
    return b"".join([chunk async for chunk in synthesizer.synthesize(text)])


def _pitch_hz(pcm: bytes) -> float:
    """Median fundamental frequency of the loud 40 ms frames, by autocorrelation."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frame, lowest, highest = 640, SAMPLE_RATE // 400, SAMPLE_RATE // 60
    pitches = []
    for start in range(0, samples.size - frame, frame // 2):
        window = samples[start : start + frame]
        if np.sqrt(np.mean(window * window)) < 2000:
            continue
        correlation = np.correlate(window, window, "full")[frame - 1 :]
        pitches.append(SAMPLE_RATE / (lowest + np.argmax(correlation[lowest:highest])))
    return float(np.median(pitches))


async def test_speaks_a_sentence_as_16khz_pcm() -> None:
    pcm = await _spoken(EspeakSynthesizer())
    # Nine words at 175 words a minute, plus eSpeak's closing pause: about 2.5 s.
    assert 1800 < duration_ms(pcm) < 3500
    assert rms(pcm) > 1000
    assert len(pcm) % 2 == 0
    # Read as 16 kHz, a male voice sits near 100 Hz (22050 Hz read as 16 kHz would be ~75).
    assert 85 < _pitch_hz(pcm) < 130


async def test_blank_text_is_no_audio() -> None:
    assert await _spoken(EspeakSynthesizer(), "   ") == b""


async def test_voices_and_rates_are_per_instance() -> None:
    male, female = EspeakSynthesizer("en-us"), EspeakSynthesizer("en+f3")
    slow, fast = EspeakSynthesizer(speed_wpm=120), EspeakSynthesizer(speed_wpm=300)
    # Interleaved, so each call must set its own voice and rate on the shared engine.
    male_pcm, female_pcm = await _spoken(male), await _spoken(female)
    slow_pcm, fast_pcm = await _spoken(slow), await _spoken(fast)
    assert _pitch_hz(female_pcm) > 1.6 * _pitch_hz(male_pcm)
    assert duration_ms(slow_pcm) > 1.8 * duration_ms(fast_pcm)
    # A language code picks that language's voice when no voice has the name.
    assert rms(await _spoken(EspeakSynthesizer("en-gb"))) > 1000


async def test_unknown_voice_is_an_error() -> None:
    with pytest.raises(TtsError, match="unknown eSpeak voice"):
        await _spoken(EspeakSynthesizer("xx-nonexistent"))


async def test_concurrent_tasks_each_get_their_own_audio() -> None:
    voices = [("en-us", 120), ("en+f3", 300), ("en-gb", 175), ("en-us+m3", 200)] * 4
    alone = {v: duration_ms(EspeakSynthesizer(*v).synthesize_pcm(SENTENCE)) for v in set(voices)}

    results = await asyncio.gather(*(_spoken(EspeakSynthesizer(*v)) for v in voices))

    for voice, pcm in zip(voices, results, strict=True):
        assert rms(pcm) > 1000
        # No audio leaked between calls: each is as long as the same voice speaking alone.
        assert abs(duration_ms(pcm) - alone[voice]) < 0.1 * alone[voice]
