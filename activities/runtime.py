"""Process-wide dependencies of the activities: settings, engines and connections.

The worker configures this once at start-up, so engines are warm and connections reused
rather than built per turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from convonet import redis_keys
from convonet.engines.agent_leg.base import AgentLeg
from convonet.engines.calendar.base import CalendarBackend
from convonet.engines.llm.base import ChatModel
from convonet.engines.stt.base import SpeechRecognizer
from convonet.engines.tts.base import SpeechSynthesizer
from convonet.settings import Settings
from convonet.speech import streams


@dataclass
class ActivityRuntime:
    settings: Settings
    redis: aioredis.Redis
    chat_model: ChatModel
    calendar: CalendarBackend
    recognizer: SpeechRecognizer
    synthesizer: SpeechSynthesizer
    agent_leg: AgentLeg
    # Audio and text streams hold bytes; this client does not decode.
    streams: aioredis.Redis


_runtime: ActivityRuntime | None = None


def configure(settings: Settings) -> ActivityRuntime:
    # Imported here so a missing optional engine never breaks importing the activities.
    from convonet.engines.agent_leg.factory import agent_leg
    from convonet.engines.calendar.factory import calendar_backend
    from convonet.engines.llm.factory import chat_model
    from convonet.engines.stt.factory import speech_recognizer
    from convonet.engines.tts.factory import speech_synthesizer

    global _runtime
    redis = redis_keys.client(settings.effective_redis_url)
    _runtime = ActivityRuntime(
        settings=settings,
        redis=redis,
        chat_model=chat_model(settings),
        calendar=calendar_backend(settings),
        recognizer=speech_recognizer(settings),
        synthesizer=speech_synthesizer(settings),
        agent_leg=agent_leg(settings, redis),
        streams=streams.binary_client(settings.effective_redis_url),
    )
    return _runtime


async def shutdown() -> None:
    """Releases what the engines hold (decoder processes, connections) once the worker has
    stopped: a process that runs one worker after another (tests) leaks none of them."""
    global _runtime
    old, _runtime = _runtime, None
    if old is None:
        return
    await old.recognizer.aclose()
    await old.synthesizer.aclose()


def current() -> ActivityRuntime:
    if _runtime is None:
        raise RuntimeError("activity runtime not configured; the worker calls configure() first")
    return _runtime
