"""Per-turn metrics at /metrics: histograms observed by the edge for every spoken turn, turn
counters, the logged-in gauge, the bridge's frame delay and the worker's tool timings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from api.bridge.link import BridgeLink, OnAudio
from convonet.call_client import ScriptedCaller
from convonet.seed import seed
from convonet.settings import Settings
from convonet.speech import timings as marks
from tests.speech_samples import speak
from tests.system import free_port, running_system
from worker import serve_metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

TURN_HISTOGRAMS = (
    "voice_to_voice_seconds",
    "end_of_speech_wait_seconds",
    "stt_final_seconds",
    "orchestration_overhead_seconds",
)
# A typed turn with a spoken reply has no speech, so only these see it as well.
REPLY_HISTOGRAMS = ("llm_first_token_seconds", "tts_first_audio_seconds")


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((f"convonet_{name}", frozenset(labels.items())), 0.0)


async def scrape(url: str) -> tuple[str, Samples]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics")
    response.raise_for_status()
    return response.headers["content-type"], parse(response.text)


async def eventually(probe: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


# ---- the overhead arithmetic ---------------------------------------------------------------


def test_orchestration_is_voice_to_voice_less_the_engines_on_the_critical_path() -> None:
    recorded = {
        marks.LAST_VOICE: 1_000,
        marks.SPEECH_END: 1_300,
        marks.STT_FINAL: 1_400,
        marks.FIRST_TOKEN: 1_650,
        marks.FIRST_AUDIO: 1_800,
        marks.STT_ENGINE: 60,
        # A step that only asked for a tool, the tool, then the step that answered.
        marks.step_field(marks.LLM_ENGINE, 1_410, "1"): 100,
        marks.step_field(marks.TOOL_ENGINE, 1_520, "2"): 30,
        marks.step_field(marks.LLM_ENGINE, 1_560, "3"): 80,
        # After the first audio: not on the critical path.
        marks.step_field(marks.TOOL_ENGINE, 1_900, "4"): 500,
        marks.step_field(marks.LLM_ENGINE, 2_000, "5"): 700,
        marks.TTS_ENGINE: 90,
    }
    figures = marks.timings_from_marks(recorded)
    assert figures.voice_to_voice_ms == 500
    assert marks.engine_ms(recorded) == 60 + 100 + 30 + 80 + 90
    assert figures.orchestration_ms == 500 - 360

    # Measured where the audio left the edge: the edge's own delay is overhead too.
    assert marks.timings_from_marks(recorded, audio_sent_at=1_850).orchestration_ms == 190


def test_orchestration_is_floored_at_zero_and_unknown_without_every_engine() -> None:
    assert marks.orchestration_ms(100, 130) == 0
    assert marks.orchestration_ms(None, 50) is None
    assert marks.orchestration_ms(100, None) is None
    partial = {marks.SPEECH_END: 0, marks.FIRST_AUDIO: 400, marks.STT_ENGINE: 50}
    assert marks.engine_ms(partial) is None
    assert marks.timings_from_marks(partial).orchestration_ms is None
    # A typed turn has no voice-to-voice, so no overhead either.
    typed = {marks.TEXT_RECEIVED: 0, marks.FIRST_TOKEN: 10, marks.FIRST_AUDIO: 40}
    assert marks.timings_from_marks(typed).orchestration_ms is None


# ---- the real system -----------------------------------------------------------------------


async def test_spoken_turns_are_counted_and_observed_at_metrics(settings: Settings) -> None:
    await seed(settings)
    async with running_system(settings) as system:
        content_type, before = await scrape(system.url)
        assert content_type.startswith("text/plain; version=0.0.4")

        caller = ScriptedCaller(system.url)
        await caller.connect()
        await caller.login("1234")
        _, logged_in = await scrape(system.url)
        assert value(logged_in, "active_conversations") == value(before, "active_conversations") + 1

        voice = await caller.speak(speak("create a todo to buy milk"), speed=1.8)
        ack = await caller.request("text_turn", {"text": "what's on my list", "speak": True})
        assert ack["ok"], ack
        typed_key = ack["data"]["turn_key"]
        await caller.wait_for("audio_done", turn_key=typed_key)
        _, after = await scrape(system.url)
        await caller.close()

        async def logged_out() -> bool:
            _, now = await scrape(system.url)
            return value(now, "active_conversations") == value(before, "active_conversations")

        await eventually(logged_out)

    assert voice["user"] == "create a todo to buy milk"

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for name in TURN_HISTOGRAMS:
        assert grew(f"{name}_count") == 1, name
        assert grew(f"{name}_bucket", le="+Inf") == 1, name
        assert (f"convonet_{name}_bucket", frozenset({("le", "0.025")})) in after, name
    for name in REPLY_HISTOGRAMS:
        assert grew(f"{name}_count") == 2, name
    assert grew("turns_total", kind="voice") == 1
    assert grew("turns_total", kind="text") == 1
    assert grew("turn_errors_total", kind="voice") == 0
    # The worker runs in this process here, so its tool timings are on the same page.
    assert grew("tool_seconds_count", tool="create_todo") == 1
    assert grew("tool_seconds_count", tool="list_todos") == 1

    # Overhead is part of voice-to-voice, never more, for the turn and in the histograms.
    timings = voice["timings"]
    assert timings is not None and timings["orchestration_ms"] is not None
    assert 0 <= timings["orchestration_ms"] <= timings["voice_to_voice_ms"]
    overhead = grew("orchestration_overhead_seconds_sum")
    assert 0 <= overhead <= grew("voice_to_voice_seconds_sum") + 1e-9
    typed = next(e for e in caller.events["timings"] if e["turn_key"] == typed_key)
    assert typed["voice_to_voice_ms"] is None and typed["orchestration_ms"] is None


# ---- the bridge and the worker's endpoint --------------------------------------------------


async def test_bridged_frames_observe_their_delay_per_direction(redis_url: str) -> None:
    from convonet.metrics import BRIDGE_AUDIO_DELAY

    def count(direction: str) -> float:
        for metric in BRIDGE_AUDIO_DELAY.collect():
            for sample in metric.samples:
                if sample.name.endswith("_count") and sample.labels["direction"] == direction:
                    return sample.value
        return 0.0

    before = {d: count(d) for d in ("to_caller", "to_agent")}
    received: dict[str, asyncio.Event] = {"caller": asyncio.Event(), "agent": asyncio.Event()}

    def on(side: str) -> OnAudio:
        async def deliver(pcm: bytes, sent_at: float) -> None:
            received[side].set()

        return deliver

    redis = aioredis.from_url(redis_url)
    caller = BridgeLink(redis, "t-metrics", "caller", on("caller"))
    agent = BridgeLink(redis, "t-metrics", "agent", on("agent"))
    try:
        await caller.start()
        await agent.start()
        agent.send(b"\x00" * 640)
        caller.send(b"\x00" * 640)
        await asyncio.wait_for(received["caller"].wait(), 5)
        await asyncio.wait_for(received["agent"].wait(), 5)
        await asyncio.sleep(0.05)  # the observation follows the delivery
    finally:
        await caller.aclose()
        await agent.aclose()
        await redis.aclose()
    assert count("to_caller") == before["to_caller"] + 1
    assert count("to_agent") == before["to_agent"] + 1


@pytest.mark.parametrize("enabled", [True, False])
async def test_worker_serves_its_metrics_on_its_own_port(enabled: bool) -> None:
    port = free_port() if enabled else 0
    settings = Settings(_env_file=None, worker_metrics_port=port)  # type: ignore[call-arg]
    stop = await asyncio.to_thread(serve_metrics, settings)
    if not enabled:
        assert stop is None
        return
    assert stop is not None
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert "# TYPE convonet_tool_seconds histogram" in response.text
    finally:
        await asyncio.to_thread(stop)
