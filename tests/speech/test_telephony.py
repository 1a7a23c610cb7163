"""The telephone-leg resampling works frame by frame, keeps speech-band tones and adds
almost no delay."""

from __future__ import annotations

import numpy as np

from convonet.speech.telephony import Downsampler, Upsampler


def _tone(frequency: float, rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16).tobytes()


def _level(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)[200:]
    return float(np.sqrt(np.mean(samples**2)))


def test_every_frame_comes_out_at_once_at_the_right_size() -> None:
    down, up = Downsampler(), Upsampler()
    for _ in range(10):
        assert len(down(b"\x00\x01" * 320)) == 320  # 20 ms at 8 kHz
        assert len(up(b"\x00\x01" * 160)) == 640  # 20 ms at 16 kHz


def test_speech_band_tones_pass_and_high_tones_are_removed() -> None:
    down = Downsampler()
    source = _tone(1000, 16_000, 1.0)
    out = b"".join(down(source[i : i + 640]) for i in range(0, len(source), 640))
    assert abs(_level(out) / _level(source) - 1) < 0.05
    high = _tone(6000, 16_000, 1.0)
    aliased = b"".join(Downsampler()(high[i : i + 640]) for i in range(0, len(high), 640))
    assert _level(aliased) < 0.05 * _level(high)

    up = Upsampler()
    narrow = _tone(1000, 8000, 1.0)
    wide = b"".join(up(narrow[i : i + 320]) for i in range(0, len(narrow), 320))
    assert abs(_level(wide) / _level(narrow) - 1) < 0.05


def test_round_trip_delay_is_about_a_millisecond() -> None:
    impulse = np.zeros(640, dtype=np.int16)
    impulse[100] = 20000
    out = np.frombuffer(Upsampler()(Downsampler()(impulse.tobytes())), dtype=np.int16)
    delay_samples = int(np.argmax(np.abs(out))) - 100
    assert 0 <= delay_samples <= 32  # 2 ms at 16 kHz
