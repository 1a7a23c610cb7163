"""Picks the text-to-speech engine from settings: Deepgram when a key is set, else eSpeak."""

from __future__ import annotations

from convonet.engines.tts.base import SpeechSynthesizer
from convonet.settings import Settings


def speech_synthesizer(settings: Settings) -> SpeechSynthesizer:
    # Engines are imported on demand so only the chosen one's dependencies load.
    if settings.deepgram_api_key:
        from convonet.engines.tts.deepgram import DeepgramSynthesizer

        return DeepgramSynthesizer(settings)
    from convonet.engines.tts.espeak import EspeakSynthesizer

    return EspeakSynthesizer(settings.espeak_voice, settings.espeak_speed_wpm)
