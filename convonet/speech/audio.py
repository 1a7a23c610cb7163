"""The one audio format inside Convonet: 16 kHz, 16-bit little-endian, mono PCM.

Browsers, Redis streams and every engine adapter agree on it; adapters convert at their edge.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
SAMPLE_BYTES = 2
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * SAMPLE_BYTES * FRAME_MS // 1000  # 640
MIN_FRAME_BYTES = FRAME_BYTES // 2  # 10 ms
MAX_FRAME_BYTES = FRAME_BYTES * 2  # 40 ms


def duration_ms(pcm: bytes | int) -> int:
    size = pcm if isinstance(pcm, int) else len(pcm)
    return size * 1000 // (SAMPLE_RATE * SAMPLE_BYTES)


def frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """Cuts PCM into frames; the last one is padded with silence."""
    out = [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]
    if out and len(out[-1]) < frame_bytes:
        out[-1] = out[-1] + b"\x00" * (frame_bytes - len(out[-1]))
    return out


def rms(pcm: bytes) -> float:
    """Root-mean-square level of 16-bit PCM, 0..32768."""
    if len(pcm) < SAMPLE_BYTES:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples)))


def resample(pcm: bytes, from_rate: int, to_rate: int = SAMPLE_RATE) -> bytes:
    """High-quality resampling of 16-bit mono PCM (soxr)."""
    if from_rate == to_rate or not pcm:
        return pcm
    import soxr

    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    converted = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return np.asarray(converted, dtype="<i2").tobytes()


def read_wav(path: Path | str | bytes) -> bytes:
    """Reads a mono 16-bit WAV of any rate and returns 16 kHz PCM."""
    source = io.BytesIO(path) if isinstance(path, bytes) else open(path, "rb")  # noqa: SIM115
    with source, wave.open(source, "rb") as wav:
        if wav.getsampwidth() != SAMPLE_BYTES:
            raise ValueError("only 16-bit WAV files are supported")
        pcm = wav.readframes(wav.getnframes())
        if wav.getnchannels() == 2:
            stereo = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2).astype(np.int32)
            pcm = (stereo.mean(axis=1)).astype("<i2").tobytes()
        elif wav.getnchannels() != 1:
            raise ValueError("only mono or stereo WAV files are supported")
        return resample(pcm, wav.getframerate())


def wav_bytes(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_BYTES)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def write_wav(path: Path, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
    path.write_bytes(wav_bytes(pcm, rate))


def silence(ms: int) -> bytes:
    return b"\x00" * (SAMPLE_RATE * SAMPLE_BYTES * ms // 1000)
