"""Offline speech synthesis with eSpeak NG, loaded through ctypes from `espeakng-loader`.

eSpeak keeps one global state (voice, rate, output callback), so every call holds one
process-wide lock and sets its own voice and rate first. A sentence takes a few
milliseconds; it still runs in a worker thread so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator

import espeakng_loader

from convonet.engines.tts.base import SpeechSynthesizer, TtsError
from convonet.speech.audio import resample

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE = 1
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0

# int callback(short *wav, int numsamples, espeak_EVENT *events); returning 0 continues.
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _VoiceProperties(ctypes.Structure):
    """espeak_VOICE: lets a language code such as "en-gb" pick a voice."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _Espeak:
    """The loaded library and its output buffer; used only while holding `_LOCK`."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as error:
            raise TtsError(f"cannot load libespeak-ng: {error}") from error
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_VoiceProperties)]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synchronize.restype = ctypes.c_int
        data_path = espeakng_loader.get_data_path().encode()
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.rate <= 0:
            raise TtsError(f"espeak_Initialize failed ({self.rate})")
        self.lib = lib
        self.chunks: list[bytes] = []
        # Kept as an attribute: ctypes must not collect the callback while eSpeak holds it.
        self.callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], samples: int, _events: object) -> int:
        if samples > 0:
            self.chunks.append(ctypes.string_at(wav, samples * 2))
        return 0

    def _set_voice(self, voice: str) -> None:
        """A voice name ("en-us", "en-us+m3"), else a language code ("en-gb")."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) == _EE_OK:
            return
        wanted = _VoiceProperties(languages=voice.lower().encode())
        if self.lib.espeak_SetVoiceByProperties(ctypes.byref(wanted)) != _EE_OK:
            raise TtsError(f"unknown eSpeak voice {voice!r}")

    def synth(self, text: str, voice: str, speed_wpm: int) -> bytes:
        """`text` as PCM at the library's own rate (22050 Hz)."""
        self._set_voice(voice)
        self.lib.espeak_SetParameter(_ESPEAK_RATE, speed_wpm, 0)
        encoded = text.encode() + b"\0"
        self.chunks = []
        result = self.lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if result != _EE_OK or self.lib.espeak_Synchronize() != _EE_OK:
            raise TtsError(f"espeak_Synth failed ({result})")
        pcm, self.chunks = b"".join(self.chunks), []
        return pcm


_LOCK = threading.Lock()
_engine: _Espeak | None = None


def _synthesize(text: str, voice: str, speed_wpm: int) -> tuple[bytes, int]:
    global _engine
    with _LOCK:
        if _engine is None:
            _engine = _Espeak()
        return _engine.synth(text, voice, speed_wpm), _engine.rate


class EspeakSynthesizer(SpeechSynthesizer):
    """Local text-to-speech: no network, no key, robotic but clear."""

    name = "espeak"

    def __init__(self, voice: str = "en-us", speed_wpm: int = 175) -> None:
        self.voice = voice
        self.speed_wpm = speed_wpm

    def synthesize_pcm(self, text: str) -> bytes:
        """`text` as 16 kHz 16-bit mono PCM, synchronously."""
        if not text.strip():
            return b""
        pcm, rate = _synthesize(text, self.voice, self.speed_wpm)
        return resample(pcm, rate)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        pcm = await asyncio.to_thread(self.synthesize_pcm, text)
        if pcm:
            yield pcm
