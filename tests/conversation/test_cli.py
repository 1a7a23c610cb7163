"""`convonet call` and `convonet replay` against a running system, as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from convonet.seed import seed
from convonet.settings import Settings
from tests.speech_samples import utterance_wav
from tests.system import running_system


async def _convonet(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "convonet.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_call_prints_json_turns_and_replay_checks_them(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        code, out, err = await _convonet(
            settings,
            "call",
            "--url",
            system.url,
            "--pin",
            "1234",
            "--say",
            "add a todo buy milk",
            "--say",
            "what are my todos",
            "--json",
        )
        assert code == 0, err
        lines = [json.loads(line) for line in out.strip().splitlines()]
        turns = [line for line in lines if "user" in line]
        assert [t["user"] for t in turns] == ["add a todo buy milk", "what are my todos"]
        assert turns[0]["tool_calls"][0]["name"] == "create_todo"
        assert "buy milk" in turns[1]["assistant"]
        assert all(isinstance(t["latency_ms"], int) for t in turns)

        code, out, err = await _convonet(
            settings, "call", "--url", system.url, "--pin", "0000", "--say", "hi"
        )
        assert code == 1
        assert "That PIN is not right." in err

        code, out, err = await _convonet(settings, "replay", "--latest", "5")
        assert code == 0, out + err
        assert "replayed" in out and ", 0 failed" in out


async def test_call_reports_an_unreachable_system(settings: Settings) -> None:
    code, _out, err = await _convonet(
        settings, "call", "--url", "http://127.0.0.1:9", "--pin", "1234", "--say", "hi"
    )
    assert code == 2 and "cannot reach Convonet" in err


async def test_call_with_audio_speaks_a_recorded_utterance(
    settings: Settings, tmp_path: Path
) -> None:
    await seed(settings)
    wav = utterance_wav(tmp_path / "list.wav", "what's on my list")
    async with running_system(settings) as system:
        code, out, err = await _convonet(
            settings,
            "call",
            "--url",
            system.url,
            "--pin",
            "1234",
            "--say",
            "add a todo buy bread",
            "--audio",
            str(wav),
            "--json",
        )
        missing = await _convonet(
            settings, "call", "--url", system.url, "--pin", "1234", "--audio", "nope.wav"
        )
    assert code == 0, err
    login, typed, spoken = (json.loads(line) for line in out.splitlines())
    assert typed["user"] == "add a todo buy bread" and "audio_ms" not in typed
    assert spoken["user"] == "what's on my list"
    assert "buy bread" in spoken["assistant"]
    assert spoken["audio_ms"] > 500
    assert spoken["timings"]["voice_to_voice_ms"] is not None
    assert missing[0] == 2 and "cannot read audio" in missing[2]
