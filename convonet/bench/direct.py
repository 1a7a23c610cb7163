"""The direct path: the same engines, called in one process with nothing in between.

No Temporal, no Redis, no sockets. Each turn is what the real system does, step for step:
frames go through the edge's `Endpointer` at the caller's pace; from the start of speech a
transcriber (the caller's vocabulary, the recognizer) takes them as they come; at the end of
speech the final transcript goes to the chat model with the same tool specs, context and
conversation memory; tool calls run against the same database as the `agent.tool` activity
runs them (an idempotency row in the same transaction); reply text is cut into sentences and
spoken while the model writes, like the `speak` activity does.

Marks are taken where the system takes them, so the parts mean the same on both paths:
end of speech (the detector's decision, with its trailing-silence wait), final transcript,
first reply text, first 20 ms frame of reply audio.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from sqlalchemy import delete, func, select

from convonet.agent.context import TurnContext
from convonet.agent.tool_result import ToolResult
from convonet.agent.tool_specs import TOOL_SPECS
from convonet.bench import report
from convonet.bench.utterances import Utterance
from convonet.db.models import CalendarEvent, Reminder, Todo, ToolExecution, User
from convonet.db.session import session_scope
from convonet.engines.calendar.base import CalendarBackend
from convonet.engines.llm.base import ChatModel
from convonet.engines.stt.base import SpeechRecognizer
from convonet.engines.tts.base import SpeechSynthesizer
from convonet.security import pin_hash
from convonet.services.dispatch import execute_tool
from convonet.settings import Settings
from convonet.speech.audio import FRAME_BYTES, FRAME_MS, frames, silence
from convonet.speech.sentences import SentenceBuffer
from convonet.speech.vad import Endpointer, VadEvent
from convonet.speech.vocabulary import load_vocabulary
from workflows.conversation.models import MAX_TURN_CHARS, MEMORY_TURNS

# What the scripted caller sends after each utterance (convonet.call_client), so the
# detector has as much silence to end the utterance on as it has on the full path.
CALLER_TRAILING_SILENCE_MS = 1500
# The workflow's graph allows 12 steps (RECURSION_LIMIT): an LLM step and a tool step each.
MAX_LLM_STEPS = 6
TURN_TIMEOUT_S = 60.0


class DirectFailed(Exception):
    pass


def now_ms() -> float:
    return time.perf_counter() * 1000


@dataclass
class BenchCaller:
    user_id: int
    name: str
    timezone: str


async def find_caller(settings: Settings, pin: str) -> BenchCaller | None:
    """The active user with this PIN, looked up as the PIN check does."""
    async with session_scope(settings.effective_database_url) as session:
        user = await session.scalar(
            select(User).where(
                User.pin_hash == pin_hash(pin, settings.pin_pepper), User.active.is_(True)
            )
        )
        if user is None:
            return None
        return BenchCaller(user_id=user.id, name=user.name, timezone=user.timezone)


# What a bench run may leave behind: the caller's own todos, reminders and events. Removing
# them afterwards keeps runs comparable (their titles become recognizer vocabulary).
_OWNED = (
    (Todo, Todo.creator_id),
    (Reminder, Reminder.user_id),
    (CalendarEvent, CalendarEvent.user_id),
)


async def data_marks(settings: Settings, user_id: int) -> dict[str, int]:
    """The highest id of each kind of the caller's data, before the bench adds any."""
    marks: dict[str, int] = {}
    async with session_scope(settings.effective_database_url) as session:
        for model, owner in _OWNED:
            highest = await session.scalar(select(func.max(model.id)).where(owner == user_id))
            marks[model.__tablename__] = int(highest or 0)
    return marks


async def remove_added_data(settings: Settings, user_id: int, marks: dict[str, int]) -> int:
    """Deletes the caller's todos, reminders and events made since `marks`; how many."""
    removed = 0
    async with session_scope(settings.effective_database_url) as session:
        for model, owner in _OWNED:
            since = marks.get(model.__tablename__, 0)
            result = await session.execute(delete(model).where(owner == user_id, model.id > since))
            removed += int(getattr(result, "rowcount", 0) or 0)
    return removed


@dataclass
class DirectEngines:
    """One of each engine, warm across turns, as the worker keeps them."""

    settings: Settings
    recognizer: SpeechRecognizer
    chat_model: ChatModel
    synthesizer: SpeechSynthesizer
    calendar: CalendarBackend

    @classmethod
    def from_settings(cls, settings: Settings) -> DirectEngines:
        from convonet.engines.calendar.factory import calendar_backend
        from convonet.engines.llm.factory import chat_model
        from convonet.engines.stt.factory import speech_recognizer
        from convonet.engines.tts.factory import speech_synthesizer

        return cls(
            settings=settings,
            recognizer=speech_recognizer(settings),
            chat_model=chat_model(settings),
            synthesizer=speech_synthesizer(settings),
            calendar=calendar_backend(settings),
        )

    def names(self) -> dict[str, str]:
        return {
            "stt": self.recognizer.name,
            "llm": self.chat_model.name,
            "tts": self.synthesizer.name,
        }

    async def aclose(self) -> None:
        await self.synthesizer.aclose()
        await self.recognizer.aclose()


@dataclass
class DirectTurn:
    heard: str
    reply: str
    tools: list[str]
    timings: report.Timings


@dataclass
class _Marks:
    """Moments (perf-counter ms) and engine work, taken where the system takes them."""

    last_voice: float | None = None
    speech_end: float | None = None
    stt_final: float | None = None
    first_token: float | None = None
    first_audio: float | None = None
    # Spans inside the recognizer's calls, for its work after the end of speech.
    stt_busy: list[tuple[float, float]] = field(default_factory=list)
    # (started, ms) of each LLM step (to the text completing its first sentence, else to
    # its end) and of each tool call; those started before the first audio count.
    llm_steps: list[tuple[float, float]] = field(default_factory=list)
    tool_calls: list[tuple[float, float]] = field(default_factory=list)
    # The synthesizer, from being asked for the first sentence to its first frame.
    tts_engine: float | None = None

    def engine_ms(self) -> float | None:
        """The engines' time on the critical path, as `convonet.speech.timings.engine_ms`
        counts it; None unless the recognizer, an LLM step and the synthesizer all worked."""
        if self.speech_end is None or self.first_audio is None or self.tts_engine is None:
            return None
        before = self.first_audio
        stt = sum(max(0.0, end - max(start, self.speech_end)) for start, end in self.stt_busy)
        llm = [ms for started, ms in self.llm_steps if started < before]
        tools = [ms for started, ms in self.tool_calls if started < before]
        if not self.stt_busy or not llm:
            return None
        return stt + sum(llm) + sum(tools) + self.tts_engine

    def timings(self) -> report.Timings:
        def gap(start: float | None, end: float | None) -> float | None:
            if start is None or end is None:
                return None
            return round(max(0.0, end - start), 1)

        v2v = gap(self.speech_end, self.first_audio)
        engines = self.engine_ms()
        return {
            report.END_OF_SPEECH: gap(self.last_voice, self.speech_end),
            report.STT: gap(self.speech_end, self.stt_final),
            report.LLM: gap(self.stt_final, self.first_token),
            report.TTS: gap(self.first_token, self.first_audio),
            report.V2V: v2v,
            report.ORCHESTRATION: (
                None if v2v is None or engines is None else round(max(0.0, v2v - engines), 1)
            ),
        }


@dataclass
class _Speaker:
    """Speaks sentences as they come, in 20 ms frames, like the `speak` activity."""

    synthesizer: SpeechSynthesizer
    marks: _Marks
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    audio_ms: int = 0
    _asked_at: float = 0.0

    async def run(self) -> None:
        while (sentence := await self.queue.get()) is not None:
            if self.audio_ms == 0:
                self._asked_at = now_ms()
            carry = b""
            async for chunk in self.synthesizer.synthesize(sentence):
                carry += chunk
                while len(carry) >= FRAME_BYTES:
                    self._frame()
                    carry = carry[FRAME_BYTES:]
            if carry:
                self._frame()

    def _frame(self) -> None:
        if self.audio_ms == 0:
            self.marks.first_audio = now_ms()
            self.marks.tts_engine = self.marks.first_audio - self._asked_at
        self.audio_ms += FRAME_MS


class DirectCall:
    """One call on the direct path: one caller, turn numbers and memory as the workflow
    keeps them."""

    def __init__(self, engines: DirectEngines, caller: BenchCaller, speed: float = 1.0) -> None:
        self.engines = engines
        self.caller = caller
        self.speed = speed
        self.conversation_id = f"bench-{uuid.uuid4().hex[:12]}"
        self.workflow_id = f"bench-direct-{self.conversation_id}"
        self.turn = 0
        self.memory: list[BaseMessage] = []

    async def speak(self, utterance: Utterance) -> DirectTurn:
        try:
            return await asyncio.wait_for(self._speak(utterance), TURN_TIMEOUT_S)
        except TimeoutError:
            raise DirectFailed(f"no reply within {TURN_TIMEOUT_S:.0f} s") from None

    async def _speak(self, utterance: Utterance) -> DirectTurn:
        marks = _Marks()
        heard = await self._listen(utterance.pcm, marks)
        if not heard:
            raise DirectFailed("nothing was heard in that audio")
        reply, tools = await self._answer(heard, marks)
        return DirectTurn(heard=heard, reply=reply, tools=tools, timings=marks.timings())

    # ---- the edge and the transcriber ----------------------------------------------------

    async def _listen(self, pcm: bytes, marks: _Marks) -> str:
        settings = self.engines.settings
        endpointer = Endpointer(
            settings.end_of_speech_silence_ms,
            settings.vad_aggressiveness,
            settings.max_utterance_s * 1000,
            hands_free=True,
        )
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        transcriber: asyncio.Task[str] | None = None
        started = time.monotonic()
        try:
            for index, frame in enumerate(frames(pcm + silence(CALLER_TRAILING_SILENCE_MS))):
                for result in endpointer.push(frame):
                    if result.event == VadEvent.START and transcriber is None:
                        transcriber = asyncio.create_task(self._transcribe(queue, marks))
                    for voiced in result.frames:
                        queue.put_nowait(voiced)
                    if result.event == VadEvent.END:
                        marks.speech_end = now_ms()
                        marks.last_voice = marks.speech_end - result.trailing_silence_ms
                        queue.put_nowait(None)
                if marks.speech_end is not None:
                    break
                await _pace(started, index, self.speed)
            if transcriber is None or marks.speech_end is None:
                raise DirectFailed("no speech was detected in that audio")
            return await transcriber
        finally:
            if transcriber is not None and not transcriber.done():
                transcriber.cancel()

    async def _transcribe(self, queue: asyncio.Queue[bytes | None], marks: _Marks) -> str:
        """The `transcribe` activity without Redis: vocabulary, recognizer, frames, final."""
        async with session_scope(self.engines.settings.effective_database_url) as session:
            vocabulary = await load_vocabulary(session, self.caller.user_id)
        recognition = await self.engines.recognizer.open(vocabulary)
        busy = marks.stt_busy
        try:
            while (pcm := await queue.get()) is not None:
                started = now_ms()
                await recognition.feed(pcm)
                busy.append((started, now_ms()))
            started = now_ms()
            text = await recognition.finish()
            busy.append((started, now_ms()))
        finally:
            await recognition.aclose()
        marks.stt_final = now_ms()
        return " ".join(text.split())[:MAX_TURN_CHARS]

    # ---- the agent and the speaker ---------------------------------------------------------

    async def _answer(self, text: str, marks: _Marks) -> tuple[str, list[str]]:
        self.turn += 1
        context = TurnContext(
            conversation_id=self.conversation_id,
            workflow_id=self.workflow_id,
            turn=self.turn,
            user_id=self.caller.user_id,
            user_name=self.caller.name,
            timezone=self.caller.timezone,
            now_iso=datetime.now(UTC).isoformat(),
            speak_key=f"u-bench-{self.turn}",
        ).localized()
        human = HumanMessage(content=text)
        messages: list[BaseMessage] = [*self.memory, human]

        speaker = _Speaker(self.engines.synthesizer, marks)
        speaking = asyncio.create_task(speaker.run())
        sentences = SentenceBuffer()
        spoken: list[str] = []
        tools: list[str] = []

        def say(delta: str) -> None:
            for sentence in sentences.push(delta):
                speaker.queue.put_nowait(sentence)

        try:
            for _step in range(MAX_LLM_STEPS):
                step = _Step(called_at=now_ms())

                async def on_text(delta: str, step: _Step = step) -> None:
                    if marks.first_token is None:
                        marks.first_token = now_ms()
                    step.text(delta)
                    spoken.append(delta)
                    say(delta)

                reply = await self.engines.chat_model.respond(
                    messages, TOOL_SPECS, context, on_text=on_text
                )
                marks.llm_steps.append((step.called_at, step.engine_ms()))
                wrote = step.wrote
                messages.append(reply)
                if wrote:
                    say(" ")  # as the LLM step ends its text: a preface is a sentence
                if not reply.tool_calls:
                    break
                tools.extend(call["name"] for call in reply.tool_calls)
                results = await asyncio.gather(
                    *(self._tool(context, dict(call), marks) for call in reply.tool_calls)
                )
                messages.extend(results)
            else:
                raise DirectFailed(f"no answer after {MAX_LLM_STEPS} model steps")
            for sentence in sentences.flush():
                speaker.queue.put_nowait(sentence)
            speaker.queue.put_nowait(None)
            await speaking
        finally:
            if not speaking.done():
                speaking.cancel()
        answer = " ".join("".join(spoken).split())
        if not answer or marks.first_audio is None:
            raise DirectFailed("the model gave no spoken answer")
        self.memory = [*self.memory, human, AIMessage(content=answer)][-2 * MEMORY_TURNS :]
        return answer, tools

    async def _tool(self, context: TurnContext, call: dict[str, Any], marks: _Marks) -> ToolMessage:
        """One tool call as the `agent.tool` activity runs it: exactly once per key."""
        started = now_ms()
        name, call_id = str(call["name"]), str(call["id"])
        args = call.get("args") or {}
        key = f"{context.workflow_id}:{context.turn}:{call_id}"
        async with session_scope(self.engines.settings.effective_database_url) as session:
            done = await session.get(ToolExecution, key)
            if done is not None:
                result = ToolResult.model_validate(done.result)
            else:
                result = await execute_tool(
                    session, context, name, dict(args), self.engines.calendar, key
                )
                session.add(
                    ToolExecution(
                        key=key, user_id=context.user_id, tool=name, result=result.model_dump()
                    )
                )
        marks.tool_calls.append((started, now_ms() - started))
        return ToolMessage(content=result.model_dump_json(), tool_call_id=call_id, name=name)


@dataclass
class _Step:
    """One LLM step's engine time, as the LLM activity measures it: from the call to the
    text that completes the step's first sentence (what the speaker waits for), else to
    the step's end."""

    called_at: float
    wrote: bool = False
    sentence_at: float | None = None
    sentences: SentenceBuffer = field(default_factory=SentenceBuffer)

    def text(self, delta: str) -> None:
        self.wrote = True
        if self.sentence_at is None and self.sentences.push(delta):
            self.sentence_at = now_ms()

    def engine_ms(self) -> float:
        return (self.sentence_at or now_ms()) - self.called_at


async def _pace(started: float, index: int, speed: float) -> None:
    """Sleeps until frame `index + 1` is due at `speed` times real time (0: no pacing)."""
    if speed <= 0:
        await asyncio.sleep(0)
        return
    delay = started + (index + 1) * FRAME_MS / 1000 / speed - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
