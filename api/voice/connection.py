"""The voice side of one caller connection: microphone, utterances, turns and playback.

The real-time loop (frames, VAD, relaying audio) never waits on Temporal: each utterance's
turn is started as a workflow update in the background when speech starts, and its streams
are relayed from Redis as the worker writes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import (
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from api.bridge.link import BridgeLink
from api.protocol import AudioFrameIn, BargeInIn, ErrorOut, MicIn, ReplyOut
from api.services import EdgeServices
from api.voice.ingest import AudioIngest, Refusal
from api.voice.relay import relay_turn
from convonet import metrics
from convonet.speech import streams
from convonet.speech import timings as marks
from convonet.speech.audio import SAMPLE_RATE
from workflows.conversation.models import (
    BargeIn,
    ConversationState,
    TurnRequest,
    TurnResult,
    VoiceTurnRequest,
)
from workflows.conversation.workflow import ConversationWorkflow

log = logging.getLogger("convonet.api.voice")

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
HandleFactory = Callable[[], Awaitable[WorkflowHandle[Any, Any]]]
# Error events about dropped frames are sent at most this often, not once per frame.
REFUSAL_INTERVAL_S = 1.0


class VoiceConnection:
    def __init__(
        self,
        services: EdgeServices,
        conversation_id: str,
        emit: Emit,
        workflow: HandleFactory,
        on_state: Callable[[TurnResult], Awaitable[None]],
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.conversation_id = conversation_id
        self.emit = emit
        self.workflow = workflow
        self.on_state = on_state
        self.ingest = AudioIngest(
            self.settings,
            services.streams,
            conversation_id,
            self._speech_started,
            self._speech_ended,
        )
        self.relays: dict[str, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._last_refusal = 0.0
        # Set while the caller talks with a human agent: the microphone feeds the bridge.
        self.bridge: BridgeLink | None = None
        self._bridge_seq = 0

    # ---- client events --------------------------------------------------------------

    def mic(self, request: MicIn) -> None:
        if request.open:
            self.ingest.open(request.mode)
        else:
            self.ingest.close()

    async def frame(self, frame: AudioFrameIn) -> None:
        refusal = self.ingest.offer(frame)
        if refusal is not None:
            await self._refuse(refusal)

    async def refuse_malformed(self) -> None:
        await self._refuse(Refusal("bad_audio", "That audio frame is malformed."))

    async def barge_in(self, request: BargeInIn) -> None:
        """The page stopped playback because the caller spoke over the reply."""
        relay = self.relays.pop(request.turn_key, None)
        if relay is not None:
            relay.cancel()
            await self.emit("audio_done", {"turn_key": request.turn_key, "interrupted": True})
        handle = await self.workflow()
        await handle.signal(
            ConversationWorkflow.barge_in,
            BargeIn(turn_key=request.turn_key, played_ms=request.played_ms),
        )

    async def spoken_text_turn(self, text: str) -> tuple[TurnResult, int]:
        """A typed turn whose reply is also spoken; returns the result and its latency."""
        turn_key = streams.new_turn_key("t")
        await streams.put_marks(
            self.services.streams,
            self.conversation_id,
            turn_key,
            {marks.TEXT_RECEIVED: streams.now_ms()},
            self.settings.audio_stream_ttl_s,
        )
        self._relay(turn_key)
        started = time.perf_counter()
        handle = await self.workflow()
        try:
            result = await handle.execute_update(
                ConversationWorkflow.turn, TurnRequest(text=text, speak_key=turn_key)
            )
        except BaseException:
            self._stop_relay(turn_key)
            raise
        return result, round((time.perf_counter() - started) * 1000)

    # ---- the bridge to a human agent ---------------------------------------------------

    async def enter_bridge(self, transfer_id: str) -> None:
        """The agent answered: the caller's audio goes to them, theirs comes back."""
        if self.bridge is not None and self.bridge.transfer_id == transfer_id:
            return
        await self.leave_bridge()
        for turn_key in list(self.relays):
            self._stop_relay(turn_key)  # the assistant's reply gives way to the agent

        async def to_caller(pcm: bytes, sent_at: float) -> None:
            self._bridge_seq += 1
            await self.emit(
                "bridge_audio", {"seq": self._bridge_seq, "rate": SAMPLE_RATE, "pcm": pcm}
            )

        link = BridgeLink(self.services.streams, transfer_id, "caller", to_caller)
        await link.start()
        self.bridge = link
        self.ingest.divert = link.send

    async def leave_bridge(self) -> None:
        link, self.bridge = self.bridge, None
        self.ingest.divert = None
        if link is not None:
            await link.aclose()

    def relay(self, turn_key: str) -> None:
        """Plays a reply the workflow speaks on its own (after a transfer)."""
        if turn_key not in self.relays:
            self._relay(turn_key)

    async def aclose(self) -> None:
        await self.leave_bridge()
        await self.ingest.aclose()
        for relay in self.relays.values():
            relay.cancel()
        for task in self.tasks:
            task.cancel()

    # ---- utterances -----------------------------------------------------------------

    async def _speech_started(self, turn_key: str) -> None:
        await self.emit("speech", {"turn_key": turn_key, "event": "start"})
        await self.emit("stage", {"turn_key": turn_key, "stage": "listening"})
        self._relay(turn_key)
        self._spawn(self._voice_turn(turn_key))

    async def _speech_ended(self, turn_key: str) -> None:
        await self.emit("speech", {"turn_key": turn_key, "event": "end"})
        await self.emit("stage", {"turn_key": turn_key, "stage": "thinking"})

    async def _voice_turn(self, turn_key: str) -> None:
        started = time.perf_counter()
        try:
            handle = await self.workflow()
            result = await handle.execute_update(
                ConversationWorkflow.voice_turn, VoiceTurnRequest(turn_key=turn_key)
            )
        except WorkflowUpdateFailedError as error:
            self._stop_relay(turn_key)
            metrics.count_turn_error("voice")
            message = getattr(error.cause, "message", None) or str(error.cause or error)
            await self._error("rejected", message)
            return
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            # The caller left (or the turn outlived the RPC); the workflow still finishes it.
            self._stop_relay(turn_key)
            return
        except RPCError as error:
            self._stop_relay(turn_key)
            metrics.count_turn_error("voice")
            log.warning("voice turn %s failed: %s", turn_key, error.message)
            await self._error("unavailable", "The assistant is unavailable; try again.")
            return
        if result.user_text:
            metrics.count_turn("voice")
        else:  # nothing was heard: not a turn
            self._stop_relay(turn_key)
            await self.emit("stage", {"turn_key": turn_key, "stage": "idle"})
        reply = ReplyOut.of(result, round((time.perf_counter() - started) * 1000))
        await self.emit("reply", reply.model_dump(mode="json"))
        if result.state != ConversationState.ACTIVE:
            await self.on_state(result)

    # ---- helpers --------------------------------------------------------------------

    def _relay(self, turn_key: str) -> None:
        task = asyncio.create_task(
            relay_turn(self.services.streams, self.emit, self.conversation_id, turn_key)
        )
        self.relays[turn_key] = task
        task.add_done_callback(lambda _: self.relays.pop(turn_key, None))

    def _stop_relay(self, turn_key: str) -> None:
        relay = self.relays.pop(turn_key, None)
        if relay is not None:
            relay.cancel()

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _refuse(self, refusal: Refusal) -> None:
        now = time.monotonic()
        if now - self._last_refusal >= REFUSAL_INTERVAL_S:
            self._last_refusal = now
            await self._error(refusal.code, refusal.message)

    async def _error(self, code: str, message: str) -> None:
        await self.emit("error", ErrorOut(code=code, message=message).model_dump())  # type: ignore[arg-type]
