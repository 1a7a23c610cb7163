"""Streaming 16 kHz <-> 8 kHz conversion for the telephone leg of the bridge.

General-purpose streaming resamplers (soxr) release audio in ~100 ms blocks, which would
add that much delay and make the call bursty. The ratio here is exactly 2, so a short
windowed-sinc low-pass with carried state does it one 20 ms frame at a time, adding about
1 ms."""

from __future__ import annotations

import numpy as np

TAPS = 31
# Cut-off a little under the 4 kHz Nyquist of the telephone side.
CUTOFF_HZ = 3600.0
WIDE_RATE = 16_000


def _lowpass() -> np.ndarray:
    n = np.arange(TAPS) - (TAPS - 1) / 2
    kernel = np.sinc(2 * CUTOFF_HZ / WIDE_RATE * n) * np.hamming(TAPS)
    return kernel / kernel.sum()


_KERNEL = _lowpass()


class _Filter:
    """The low-pass over a continuous stream: each call sees the previous call's tail."""

    def __init__(self) -> None:
        self.tail = np.zeros(TAPS - 1)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        padded = np.concatenate([self.tail, samples])
        self.tail = padded[-(TAPS - 1) :]
        return np.convolve(padded, _KERNEL, mode="valid")


def _to_int16(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16).tobytes()


class Downsampler:
    """16 kHz PCM in, 8 kHz PCM out, frame by frame."""

    def __init__(self) -> None:
        self.filter = _Filter()
        self.phase = 0

    def __call__(self, pcm16k: bytes) -> bytes:
        filtered = self.filter(np.frombuffer(pcm16k, dtype=np.int16).astype(np.float64))
        kept = filtered[self.phase :: 2]
        self.phase = (self.phase + len(filtered)) % 2
        return _to_int16(kept)


class Upsampler:
    """8 kHz PCM in, 16 kHz PCM out, frame by frame."""

    def __init__(self) -> None:
        self.filter = _Filter()

    def __call__(self, pcm8k: bytes) -> bytes:
        samples = np.frombuffer(pcm8k, dtype=np.int16).astype(np.float64)
        stuffed = np.zeros(len(samples) * 2)
        stuffed[::2] = samples * 2  # zero-stuffing halves the level; the gain restores it
        return _to_int16(self.filter(stuffed))
