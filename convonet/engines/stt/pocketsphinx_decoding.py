"""Pocketsphinx decoding, run inside a decoder process (convonet.engines.stt.pocketsphinx).

Pocketsphinx holds Python's GIL while it decodes, so decoding in the worker's own threads
stalled its event loop (workflow tasks, heartbeats, every other call) for each batch, and
two decoding threads ran slower together than one after the other. Here decoding runs in
plain synchronous functions that a process of its own calls, one utterance at a time per
call, keyed by a stream id the engine hands out.

Decoders are kept warm: each is bound to one language model (convonet.engines.stt.domain_lm)
and, between utterances, waits in a pool keyed by that model's digest. An utterance checks
one out and hands it back when done, so a decoder never serves two utterances at once; when
every decoder of a model is busy a new one is made (about 20 ms and 7 MB).

A decoder normalizes features by a running cepstral mean that it learns from the audio it
has heard. Started from pocketsphinx's default mean, a fresh decoder mishears its first
utterance badly (38 % word errors against 6 % once warm). So new decoders start from the
mean of the most recently finished utterance, and the very first from a mean measured on
ordinary-level speech, which brings a cold first utterance to 6-10 % even 10 dB quieter.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from pocketsphinx import Decoder

from convonet.engines.stt.base import SttError
from convonet.engines.stt.domain_lm import dictionary_path
from convonet.speech.audio import SAMPLE_RATE

# Idle decoders kept across all models in one decoder process, least recently used
# dropped first (about 7 MB each; a machine runs one process per core).
_POOL_LIMIT = 4
# Pocketsphinx mishears clean audio whose pauses are digital silence (synthetic speech, or
# a browser's noise suppression): its feature normalization expects a microphone's hiss.
# Adding a fixed, faint noise floor took synthetic commands from 19-34 % word errors to
# 4-11 %. At -41 dBFS it also evens out small differences of the browser's capture path
# (at -50 dBFS, "buy milk" heard through Chromium often came out as "buy real").
LANGUAGE_WEIGHT = 12.0
_NOISE_FLOOR = np.random.default_rng(0).normal(0.0, 300.0, SAMPLE_RATE).astype(np.int32)
# The cepstral mean after 20 commands each in six eSpeak voices (male and female, US, UK
# and Scottish) at -20 dBFS: a far better start than pocketsphinx's "40,3,-1".
_SPEECH_CEPSTRAL_MEAN = "55,-7.5,-4.6,3.8,-9.4,-1.3,-3.7,-7.7,-3.8,-2.6,1.1,-2.8,-1.9"
# When an utterance ends with its cepstral mean this far (Euclidean) from where decoding
# started (a new microphone, a new level, a cold start), the live pass was decoded under the
# wrong normalization: the utterance is decoded once more with the mean it has now taught
# us. A steady caller drifts less than this and never pays for the decoding again.
_CMN_DRIFT = 4.0
# The flat pass's beam (pocketsphinx's default 1e-64): narrower, it takes a fifth less CPU
# with the same word errors on the commands, in several voices and levels.
_FLAT_BEAM = 1e-40
_NOT_WORDS = re.compile(r"^[<\[].*[>\]]$")


class _DecoderPool:
    """Idle decoders by language-model digest, and the latest cepstral mean."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._idle: OrderedDict[str, list[Decoder]] = OrderedDict()
        self._cepstral_mean = _SPEECH_CEPSTRAL_MEAN

    def take(self, digest: str, lm_path: Path) -> Decoder:
        idle = self._idle.get(digest)
        if idle:
            self._idle.move_to_end(digest)
            return idle.pop()
        try:
            return Decoder(
                lm=str(lm_path),
                dict=str(dictionary_path(lm_path)),
                # One flat-lexicon pass, run live as the audio arrives, and no tree pass.
                # The domain dictionary is small (a few hundred words), so the flat search
                # costs no more than tree + flat did (real-time factor ~0.07 against ~0.09)
                # and hears better (commands 8.7 % -> 3.9 % word errors); above all, the
                # flat pass no longer runs over the whole utterance after its end, which
                # took ~70 ms of the final transcript's time for 3 s of audio (now ~5).
                fwdtree=False,
                fwdflat=True,
                fwdflatbeam=_FLAT_BEAM,
                lw=LANGUAGE_WEIGHT,
                cmninit=self._cepstral_mean,
                loglevel="FATAL",
            )
        except (RuntimeError, ValueError) as error:
            raise SttError(f"pocketsphinx could not load {lm_path.name}: {error}") from error

    def give_back(self, digest: str, decoder: Decoder) -> None:
        """Pools a decoder whose utterance has ended."""
        self._cepstral_mean = decoder.get_cmn()
        self._idle.setdefault(digest, []).append(decoder)
        self._idle.move_to_end(digest)
        while sum(len(d) for d in self._idle.values()) > self.limit:
            oldest = next(iter(self._idle))
            self._idle[oldest].pop(0)
            if not self._idle[oldest]:
                del self._idle[oldest]


class _Utterance:
    """One utterance on a decoder checked out of the pool."""

    def __init__(self, pool: _DecoderPool, lm_path: Path) -> None:
        self._pool = pool
        self._digest = lm_path.stem
        decoder = pool.take(self._digest, lm_path)
        try:
            decoder.start_utt()
        except RuntimeError as error:
            raise SttError(f"pocketsphinx failed: {error}") from error
        self._decoder = decoder
        self._noise_at = 0
        self._interim = ""
        self._heard = bytearray()
        self._started_cmn = _coefficients(decoder.get_cmn())

    def decode(self, pcm: bytes) -> str | None:
        try:
            self._process(pcm)
        except RuntimeError as error:
            raise SttError(f"pocketsphinx failed: {error}") from error
        text = _text(self._decoder)
        if not text or text == self._interim:
            return None
        self._interim = text
        return text

    def end(self, last: bytes | None) -> str:
        """Ends the utterance: with its last audio for the final text, or None to drop it."""
        decoder = self._decoder
        try:
            if last:
                self._process(last)
            decoder.end_utt()
            if last is not None and self._drifted():
                self._redecode()
        except RuntimeError as error:
            if last is not None:
                raise SttError(f"pocketsphinx failed: {error}") from error
            return ""  # a broken decoder is dropped, never pooled
        text = _text(decoder) if last is not None else ""
        self._pool.give_back(self._digest, decoder)
        return text

    def _process(self, pcm: bytes) -> None:
        self._heard += pcm
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
        noise = _NOISE_FLOOR.take(np.arange(samples.size) + self._noise_at, mode="wrap")
        self._noise_at = (self._noise_at + samples.size) % _NOISE_FLOOR.size
        noisy = np.clip(samples + noise, -32768, 32767).astype("<i2")
        self._decoder.process_raw(noisy.tobytes(), False, False)

    def _drifted(self) -> bool:
        now = _coefficients(self._decoder.get_cmn())
        return float(np.linalg.norm(now - self._started_cmn)) > _CMN_DRIFT

    def _redecode(self) -> None:
        audio, self._heard = bytes(self._heard), bytearray()
        self._noise_at = 0
        self._decoder.start_utt()
        self._process(audio)
        self._decoder.end_utt()


# How often a decoder process looks whether the process it serves is still there.
_PARENT_CHECK_S = 1.0


def serve(parent_pid: int) -> None:
    """Starts a decoder process: it ends when the process it serves is gone, even one
    killed outright, rather than linger holding its decoders (its call queue never tells:
    the process holds both ends of it)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# This process's decoders and the utterances under way, by the engine's stream id.
_pool = _DecoderPool(_POOL_LIMIT)
_utterances: dict[int, _Utterance] = {}


def start(stream_id: int, lm_path: str) -> None:
    """Starts an utterance with the language model at `lm_path`."""
    _utterances[stream_id] = _Utterance(_pool, Path(lm_path))


def decode(stream_id: int, pcm: bytes) -> str | None:
    """Decodes more of the utterance; returns new interim text when it changed."""
    return _utterance(stream_id).decode(pcm)


def end(stream_id: int, last: bytes | None) -> str:
    """Ends the utterance with its last audio and returns its text; None drops it."""
    utterance = _utterances.pop(stream_id, None)
    if utterance is None:
        if last is not None:
            raise SttError("the utterance has already ended")
        return ""
    return utterance.end(last)


def _utterance(stream_id: int) -> _Utterance:
    utterance = _utterances.get(stream_id)
    if utterance is None:
        raise SttError("the utterance has already ended")
    return utterance


def _coefficients(cepstral_mean: str) -> np.ndarray:
    return np.array([float(value) for value in cepstral_mean.split(",")])


def _text(decoder: Decoder) -> str:
    """The current hypothesis as plain lower-case words."""
    hypothesis = decoder.hyp()
    if hypothesis is None:
        return ""
    words = (w.split("(", 1)[0] for w in hypothesis.hypstr.lower().split())
    return " ".join(w for w in words if w and not _NOT_WORDS.match(w))
