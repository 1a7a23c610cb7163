"""G.711 mu-law, the only audio Twilio Media Streams carry (8 kHz, 8-bit, mono).

Why our own codec: `audioop` is deprecated and gone in Python 3.13, and a media stream
moves 50 frames a second per call, so the conversion is two table look-ups done by numpy
rather than a per-sample Python loop.

The encoder follows `audioop.lin2ulaw` bit for bit, which is the classic G.711 algorithm
(bias 0x84, clip 32635, bits inverted) applied to the sample shifted down to 14 bits: the
two bits dropped never change the code for positive samples, but for negative ones the
arithmetic shift rounds toward minus infinity, so a few codes differ from an encoder that
works on the full 16 bits. Matching audioop keeps audio identical to what other tools
(sox, ffmpeg, Twilio's own samples) produce from the same PCM.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BIAS = 0x84
CLIP = 32635
# The encoder works on 14-bit magnitudes, where bias and clip are a quarter as large.
_BIAS14 = BIAS >> 2
_CLIP14 = CLIP >> 2
# Upper bound (inclusive) of each of the 8 segments, in biased 14-bit magnitude.
_SEGMENT_ENDS14 = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)


def _build_decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + BIAS) << exponent
    linear = np.where(code & 0x80, BIAS - magnitude, magnitude - BIAS)
    return linear.astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Index i holds the code of every 16-bit sample s with (s >> 2) == i - 8192.
    sample14 = np.arange(-8192, 8192, dtype=np.int32)
    negative = sample14 < 0
    magnitude = np.minimum(np.abs(sample14), _CLIP14) + _BIAS14
    segment = np.searchsorted(_SEGMENT_ENDS14, magnitude, side="left").astype(np.int32)
    mantissa = (magnitude >> np.minimum(segment + 1, 15)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)
    inverted = np.where(negative, code ^ 0x7F, code ^ 0xFF)
    return inverted.astype(np.uint8)


_DECODE = _build_decode_table()
_ENCODE = _build_encode_table()


def encode(pcm16: bytes) -> bytes:
    """16-bit little-endian signed PCM to mu-law, one byte per sample.

    A trailing odd byte (half a sample) is ignored."""
    samples = np.frombuffer(pcm16, dtype="<i2", count=len(pcm16) // 2)
    index = (samples.astype(np.int32) >> 2) + 8192
    return _ENCODE[index].tobytes()


def decode(ulaw: bytes) -> bytes:
    """Mu-law bytes to 16-bit little-endian signed PCM, two bytes per sample."""
    codes = np.frombuffer(ulaw, dtype=np.uint8)
    return _DECODE[codes].astype("<i2").tobytes()
