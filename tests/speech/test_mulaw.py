"""The mu-law codec against Python's own `audioop`, the reference every tool agrees with."""

from __future__ import annotations

import warnings

import numpy as np

from convonet.speech import mulaw

with warnings.catch_warnings():
    # audioop is deprecated (gone in 3.13); here it is only the reference.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def test_encode_matches_audioop_for_every_sample() -> None:
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert mulaw.encode(every_sample) == audioop.lin2ulaw(every_sample, 2)


def test_decode_matches_audioop_for_every_code() -> None:
    every_code = bytes(range(256))
    assert mulaw.decode(every_code) == audioop.ulaw2lin(every_code, 2)


def test_lengths_and_empty_input() -> None:
    assert mulaw.encode(b"") == b""
    assert mulaw.decode(b"") == b""
    assert len(mulaw.encode(b"\x00\x01" * 160)) == 160
    assert len(mulaw.decode(b"\xff" * 160)) == 320
    # Silence encodes to 0xFF, Twilio's idle byte.
    assert mulaw.encode(b"\x00\x00") == b"\xff"


def test_round_trip_of_a_tone_keeps_30_db_snr() -> None:
    t = np.arange(8000) / 8000
    tone = np.round(12000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    back = np.frombuffer(mulaw.decode(mulaw.encode(tone.tobytes())), dtype="<i2")
    signal = tone.astype(np.float64)
    noise = signal - back.astype(np.float64)
    snr_db = 10 * np.log10(np.sum(signal**2) / np.sum(noise**2))
    assert snr_db > 30, snr_db
