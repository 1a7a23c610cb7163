"""Picks the speech-to-text engine from settings: Deepgram when a key is set, else
pocketsphinx. Engines are heavy (warm decoders, open connections): keep one per process."""

from __future__ import annotations

from convonet.engines.stt.base import SpeechRecognizer
from convonet.settings import Settings


def speech_recognizer(settings: Settings) -> SpeechRecognizer:
    # Engines are imported on demand so only the chosen one's dependencies load.
    if settings.deepgram_api_key:
        from convonet.engines.stt.deepgram import DeepgramRecognizer

        return DeepgramRecognizer(settings)
    from convonet.engines.stt.pocketsphinx import PocketsphinxRecognizer

    return PocketsphinxRecognizer(settings.data_dir / "speech", settings.pocketsphinx_processes)
