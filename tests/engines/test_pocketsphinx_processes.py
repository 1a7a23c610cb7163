"""The offline recognizer decodes in processes of its own: they share the work, a dead one
fails only its utterances and is replaced, and none outlives the process it serves."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from convonet.engines.stt.base import SttError, Vocabulary
from convonet.engines.stt.pocketsphinx import PocketsphinxRecognizer
from convonet.speech.audio import FRAME_BYTES, frames, silence
from tests.speech_samples import speak

VOCABULARY = Vocabulary(("buy milk",))


def _decoders(pid: int) -> list[psutil.Process]:
    children = psutil.Process(pid).children()
    return [c for c in children if "multiprocessing.spawn" in " ".join(c.cmdline())]


async def _say(engine: PocketsphinxRecognizer, text: str) -> str:
    stream = await engine.open(VOCABULARY)
    try:
        for frame in frames(silence(200) + speak(text) + silence(600), FRAME_BYTES):
            await stream.feed(frame)
        return await stream.finish()
    finally:
        await stream.aclose()


async def test_utterances_spread_over_the_processes_and_close_stops_them(
    tmp_path: Path,
) -> None:
    engine = PocketsphinxRecognizer(tmp_path, processes=2)
    try:
        heard = await asyncio.gather(
            _say(engine, "what's on my list"), _say(engine, "create a todo to buy milk")
        )
        assert heard == ["what's on my list", "create a todo to buy milk"]
        assert len(_decoders(os.getpid())) == 2
    finally:
        await engine.aclose()
    for _ in range(50):
        if not _decoders(os.getpid()):
            break
        await asyncio.sleep(0.1)
    assert not _decoders(os.getpid())


async def test_a_killed_decoder_fails_its_utterance_and_is_replaced(tmp_path: Path) -> None:
    engine = PocketsphinxRecognizer(tmp_path, processes=1)
    try:
        stream = await engine.open(VOCABULARY)
        (decoder,) = _decoders(os.getpid())
        decoder.send_signal(signal.SIGKILL)
        decoder.wait(timeout=10)
        with pytest.raises(SttError, match="decoder process stopped"):
            for frame in frames(speak("what's on my list") + silence(600), FRAME_BYTES):
                await stream.feed(frame)
            await stream.finish()
        await stream.aclose()  # nothing left to release: no error
        assert await _say(engine, "what's on my list") == "what's on my list"
    finally:
        await engine.aclose()


def test_decoders_end_with_a_process_killed_outright(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from pathlib import Path
        from convonet.engines.stt.base import Vocabulary
        from convonet.engines.stt.pocketsphinx import PocketsphinxRecognizer

        async def main():
            engine = PocketsphinxRecognizer(Path({str(tmp_path)!r}), processes=2)
            await asyncio.gather(engine.open(Vocabulary()), engine.open(Vocabulary()))
            print("open", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "open"
        decoders = _decoders(owner.pid)
        assert len(decoders) == 2
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(d.is_running() and d.status() != psutil.STATUS_ZOMBIE for d in decoders):
            assert time.monotonic() < deadline, "a decoder process outlived its owner"
            time.sleep(0.1)
    finally:
        if owner.poll() is None:
            owner.kill()
