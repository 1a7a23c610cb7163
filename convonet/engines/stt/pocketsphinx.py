"""Offline speech recognition with pocketsphinx and the assistant's own language model.

Decoding runs in decoder processes of the engine's own (convonet.engines.stt.
pocketsphinx_decoding says why: pocketsphinx holds the GIL while it decodes). Each stream
stays on one process for its whole utterance, the one with the fewest utterances under way
when it opened, so a machine's cores decode side by side while the caller's process only
buffers audio and passes it on. A process runs its calls in order, one at a time, so a
cancelled `feed` can never overlap the `finish` or `aclose` that follows it.

A decoder process that dies fails the utterances it held with `SttError` (the activity's
retry re-reads the utterance) and is replaced at the next call.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from convonet.engines.stt import pocketsphinx_decoding as decoding
from convonet.engines.stt.base import RecognitionStream, SpeechRecognizer, SttError, Vocabulary
from convonet.engines.stt.domain_lm import build_language_model
from convonet.speech.audio import SAMPLE_BYTES, SAMPLE_RATE

# Audio is decoded, and interim text looked at, once this much has arrived: one hop to
# the decoder process per 200 ms of speech instead of one per 20 ms frame.
_BATCH_BYTES = SAMPLE_RATE * SAMPLE_BYTES // 5
T = TypeVar("T")


class _DecoderProcess:
    """One decoder process, started on first use and again after it died."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self.streams = 0  # utterances under way on it

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        executor = self._executor
        if executor is None:
            # Spawned, not forked: the caller's process runs threads (Temporal's core, the
            # event loop's executors) that a fork would copy in whatever state they were.
            executor = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=decoding.serve,
                initargs=(os.getpid(),),
            )
            self._executor = executor
        try:
            # Shielded: once submitted, a call runs even if its caller is cancelled, so a
            # cancelled `aclose` still hands the decoder back.
            return await asyncio.shield(asyncio.wrap_future(executor.submit(function, *args)))
        except BrokenProcessPool:
            if self._executor is executor:
                self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            raise SttError("the pocketsphinx decoder process stopped") from None

    def forget(self, stream_id: int) -> None:
        """Drops an utterance whose start may or may not have run, without waiting."""
        if self._executor is not None:
            try:
                self._executor.submit(decoding.end, stream_id, None)
            except (BrokenProcessPool, RuntimeError):
                pass  # the process is gone, and the utterance with it

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class _PocketsphinxStream(RecognitionStream):
    def __init__(self, process: _DecoderProcess, stream_id: int) -> None:
        self._process = process
        self._id = stream_id
        self._buffer = b""
        self._open = True

    async def feed(self, pcm: bytes) -> str | None:
        if not self._open:
            raise SttError("the utterance has already ended")
        self._buffer += pcm
        if len(self._buffer) < _BATCH_BYTES:
            return None
        return await self._process.call(decoding.decode, self._id, self._take_buffer())

    async def finish(self) -> str:
        if not self._open:
            raise SttError("the utterance has already ended")
        self._release()
        return await self._process.call(decoding.end, self._id, self._take_buffer())

    async def aclose(self) -> None:
        self._buffer = b""
        if not self._open:
            return
        self._release()
        try:
            await self._process.call(decoding.end, self._id, None)
        except SttError:
            pass  # the process died with the utterance: nothing is left to release

    def _release(self) -> None:
        self._open = False
        self._process.streams -= 1

    def _take_buffer(self) -> bytes:
        """The buffered whole samples; an odd trailing byte waits for the rest of its sample."""
        whole = len(self._buffer) // SAMPLE_BYTES * SAMPLE_BYTES
        batch, self._buffer = self._buffer[:whole], self._buffer[whole:]
        return batch


class PocketsphinxRecognizer(SpeechRecognizer):
    """Local speech-to-text: no network, no key; language models live under `cache_dir`.

    `processes` decoder processes (0: one per CPU core) start as utterances need them."""

    name = "pocketsphinx"

    def __init__(self, cache_dir: Path, processes: int = 0) -> None:
        self.cache_dir = cache_dir
        count = processes or os.cpu_count() or 1
        self._processes = [_DecoderProcess() for _ in range(count)]
        self._ids = itertools.count()

    async def open(self, vocabulary: Vocabulary) -> RecognitionStream:
        lm_path = await asyncio.to_thread(build_language_model, vocabulary, self.cache_dir)
        process = min(self._processes, key=lambda candidate: candidate.streams)
        stream_id = next(self._ids)
        process.streams += 1
        try:
            await process.call(decoding.start, stream_id, str(lm_path))
        except BaseException:
            process.streams -= 1
            process.forget(stream_id)
            raise
        return _PocketsphinxStream(process, stream_id)

    async def aclose(self) -> None:
        """Stops the decoder processes (they also end when this process ends)."""
        for process in self._processes:
            process.close()
