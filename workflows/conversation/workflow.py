"""ConversationWorkflow: one per caller, from PIN login to hang-up.

Deterministic orchestration only: PIN checks, the agent's LLM step and every tool call run
as activities. The history holds text, ids and small facts, never audio, PINs or tokens.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.workflow import ActivityCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from temporalio.langgraph import graph

    from activities.auth import close_session, verify_pin
    from activities.models import (
        CloseSessionInput,
        PinOutcome,
        ReplyTextInput,
        SpeakInput,
        SpeakResult,
        TranscribeInput,
        VerifyPinInput,
    )
    from activities.speech import reply_text, speak, transcribe
    from activities.transfer import AnnounceInput, announce
    from convonet import search_attributes as sa
    from workflows.agent_graph import GRAPH_NAME
    from workflows.conversation.models import (
        MAX_TURN_CHARS,
        MEMORY_TURNS,
        TRANSCRIPT_LIMIT,
        AuthRequest,
        AuthResult,
        BargeIn,
        CarriedState,
        ConversationInput,
        ConversationState,
        ConversationStatus,
        ToolCallSummary,
        TranscriptEntry,
        TransferRequest,
        TurnRequest,
        TurnResult,
        VoiceTurnRequest,
        workflow_id_for,
    )
    from workflows.transfer.models import (
        TRANSCRIPT_FOR_AGENT,
        FailureReason,
        HandOffLine,
        TransferInput,
        TransferProgress,
        TransferState,
    )
    from workflows.transfer.workflow import TransferWorkflow

RECURSION_LIMIT = 12
SORRY = "Sorry, I'm having trouble right now. Please try again in a moment."
SPEAK_TIMEOUT = timedelta(seconds=120)
TRANSCRIBE_TIMEOUT = timedelta(minutes=3)
# Voice turns start their speaker when the caller starts talking, not when the answer is
# being worked out: the speaker is then already waiting on the reply's text stream when
# the LLM writes its first words. Started in `_run_turn`, its start would only reach the
# server once the workflow task that runs the agent's local activities completed, after
# the whole answer. Conversations whose turns started before keep the old order.
SPEAK_AT_SPEECH_START_PATCH = "speak-at-speech-start"
# Such a speaker first waits for the utterance to be transcribed.
EARLY_SPEAK_TIMEOUT = SPEAK_TIMEOUT + TRANSCRIBE_TIMEOUT
# The turn of a speaker started before its turn had a number.
NO_TURN_YET = -1
# Heartbeats carry the stream offsets; a dead worker's attempt is retried this soon.
SPEECH_HEARTBEAT = timedelta(seconds=3)
SPEECH_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=200))
# Conversations started before transfers became a child workflow stay as they were.
TRANSFER_CHILD_PATCH = "transfer-child-workflow"
# After the call ends, a transfer still running gets this long to let go of the agent.
TRANSFER_RELEASE_TIMEOUT = timedelta(seconds=60)
OFFER = "I can take a message for the team, or try again. What would you like?"
FAILURE_SAYS: dict[str, str] = {
    FailureReason.NO_ANSWER: "Sorry, nobody in {department} answered.",
    FailureReason.BUSY: "Sorry, everyone in {department} is busy right now.",
    FailureReason.REJECTED: "Sorry, {agent} couldn't take your call just now.",
    FailureReason.NO_AGENT: "Sorry, nobody in {department} is available right now.",
    FailureReason.ERROR: "Sorry, I couldn't connect you to {department}.",
}
STATUS_SAYS = {
    "requested": "I'm finding someone in {department} for you.",
    "dialing": "I'm calling {agent} in {department} now.",
    "ringing": "{agent}'s phone is ringing.",
    "answered": "{agent} is picking up now.",
}


class _Speaking:
    """The reply being spoken right now, so a barge-in can stop it."""

    def __init__(self, turn: int, turn_key: str, handle: workflow.ActivityHandle[SpeakResult]):
        self.turn = turn
        self.turn_key = turn_key
        self.handle = handle
        self.played_ms: int | None = None
        self.task: asyncio.Task[None] | None = None


@workflow.defn
class ConversationWorkflow:
    @workflow.init
    def __init__(self, input: ConversationInput) -> None:
        self._input = input
        self._s = input.carried or CarriedState()
        self._last_touch = workflow.now()
        self._turn_lock = asyncio.Lock()
        self._published: tuple[str, bool, str, str] | None = None
        self._speaking: _Speaking | None = None
        # The reply spoken last and what its speaker reported: synthesis runs far ahead of
        # playback, so a barge-in usually arrives after the speaker has finished.
        self._spoken: tuple[_Speaking, SpeakResult] | None = None
        self._transfer_task: asyncio.Task[None] | None = None
        self._child: workflow.ChildWorkflowHandle[TransferWorkflow, TransferProgress] | None = None
        self._agent = graph(GRAPH_NAME).compile()

    # ---- run loop ---------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ConversationInput) -> ConversationStatus:
        self._publish()
        idle = timedelta(seconds=input.idle_timeout_s)
        self._touch()
        while self._s.state != ConversationState.ENDED:
            # One timer per idle period: turns move the deadline without waking this loop,
            # so they add no timer events to the history.
            remaining = self._last_touch + idle - workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: self._s.state == ConversationState.ENDED or self._history_is_long(),
                    timeout=max(remaining, timedelta(seconds=1)),
                )
            except TimeoutError:
                if self._busy():
                    self._touch()  # a long turn or a call with an agent is not idleness
                elif workflow.now() - self._last_touch >= idle:
                    self._end("idle-timeout")
                continue
            if self._history_is_long() and self._s.state != ConversationState.ENDED:
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() and not self._busy()
                )
                self._s.runs += 1
                workflow.continue_as_new(input.model_copy(update={"carried": self._s}))
        self._interrupt_speaking()
        await self._release_transfer()
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._speaking is None
        )
        if self._s.caller is not None:
            await workflow.execute_activity(
                close_session,
                CloseSessionInput(conversation_id=input.conversation_id),
                start_to_close_timeout=timedelta(seconds=10),
                summary="close session",
            )
        return self._status()

    def _touch(self) -> None:
        self._last_touch = workflow.now()

    def _busy(self) -> bool:
        return (
            self._turn_lock.locked()
            or self._speaking is not None
            or self._transfer_task is not None
        )

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.get_current_history_length() >= self._input.continue_as_new_after_events
            or info.is_continue_as_new_suggested()
        )

    # ---- updates ----------------------------------------------------------------------

    @workflow.update
    async def attach(self) -> ConversationStatus:
        """Used with update-with-start when a browser connects: starts or resumes."""
        self._touch()
        return self._status()

    @workflow.update
    async def authenticate(self, request: AuthRequest) -> AuthResult:
        self._touch()
        result = await workflow.execute_activity(
            verify_pin,
            VerifyPinInput(
                conversation_id=self._input.conversation_id,
                pin_token=request.pin_token,
                client_address=request.client_address,
                session_digest=request.session_digest,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="verify PIN",
        )
        if result.outcome == PinOutcome.OK and result.caller is not None:
            self._s.caller = result.caller
            self._s.state = ConversationState.ACTIVE
            greeting = f"Hi {result.caller.name.split()[0]}, how can I help?"
            self._note("assistant", greeting)
            self._publish()
            return AuthResult(
                ok=True, greeting=greeting, caller_name=result.caller.name, state=self._s.state
            )
        if result.outcome == PinOutcome.EXPIRED:
            return AuthResult(
                ok=False,
                reason="The PIN took too long to check. Please enter it again.",
                attempts_left=self._attempts_left(),
                state=self._s.state,
            )
        self._s.pin_failures += 1
        if result.outcome == PinOutcome.LOCKED:
            minutes = max(1, (result.locked_for_s + 59) // 60)
            reason = f"Too many wrong PINs from this device. Try again in {minutes} minutes."
        else:
            reason = "That PIN is not right."
        if self._attempts_left() == 0:
            reason += " Too many attempts: this call is ending."
            self._end("auth-failed")
        self._publish()
        return AuthResult(
            ok=False, reason=reason, attempts_left=self._attempts_left(), state=self._s.state
        )

    @authenticate.validator
    def _validate_authenticate(self, request: AuthRequest) -> None:
        if self._s.state == ConversationState.ENDED:
            raise ValueError("This conversation has ended.")
        if self._s.state != ConversationState.AWAITING_AUTH:
            raise ValueError("Already logged in.")

    @workflow.update
    async def turn(self, request: TurnRequest) -> TurnResult:
        self._touch()
        if request.speak_key:
            self._interrupt_speaking()
        async with self._turn_lock:
            return await self._run_turn(request.text.strip(), request.speak_key)

    @turn.validator
    def _validate_turn(self, request: TurnRequest) -> None:
        self._require_active()
        text = request.text.strip()
        if not text:
            raise ValueError("The message is empty.")
        if len(text) > MAX_TURN_CHARS:
            raise ValueError(f"The message is too long (over {MAX_TURN_CHARS} characters).")

    @workflow.update
    async def voice_turn(self, request: VoiceTurnRequest) -> TurnResult:
        """The caller started speaking: transcribe as the audio arrives, answer, speak."""
        self._touch()
        self._interrupt_speaking()  # new speech is a barge-in on any reply still playing
        caller = self._s.caller
        assert caller is not None  # the validator only admits turns after login
        early = workflow.patched(SPEAK_AT_SPEECH_START_PATCH)
        transcribing = workflow.start_activity(
            transcribe,
            TranscribeInput(
                conversation_id=self._input.conversation_id,
                turn_key=request.turn_key,
                user_id=caller.user_id,
            ),
            start_to_close_timeout=TRANSCRIBE_TIMEOUT,
            heartbeat_timeout=SPEECH_HEARTBEAT,
            retry_policy=SPEECH_RETRY,
            summary=f"transcribe {request.turn_key}",
        )
        if early:
            self._start_speaking(NO_TURN_YET, request.turn_key, started_early=True)
        try:
            heard = await transcribing
        except BaseException:
            self._stop_speaking(request.turn_key)
            raise
        self._touch()
        async with self._turn_lock:
            text = heard.text.strip()
            if not text or self._s.state not in _TURN_STATES:
                # Noise, or the call moved on while the caller spoke: nothing to answer.
                self._stop_speaking(request.turn_key)
                return TurnResult(
                    turn=self._s.turn,
                    user_text="",
                    turn_key=request.turn_key,
                    reply="",
                    state=self._s.state,
                    transfer=self._s.transfer,
                )
            return await self._run_turn(text, request.turn_key, speaking_started=early)

    @voice_turn.validator
    def _validate_voice_turn(self, request: VoiceTurnRequest) -> None:
        self._require_active()

    def _require_active(self) -> None:
        if self._s.state == ConversationState.AWAITING_AUTH:
            raise ValueError("Please log in with your PIN first.")
        if self._s.state == ConversationState.ENDED:
            raise ValueError("This conversation has ended.")
        if self._s.state == ConversationState.BRIDGED:
            agent = self._s.transfer.agent_name if self._s.transfer else "the agent"
            raise ValueError(f"You're connected with {agent}; the assistant is paused.")
        if self._s.state not in _TURN_STATES:
            raise ValueError(f"The assistant is paused while the call is {self._s.state}.")

    # ---- signals and queries ----------------------------------------------------------

    @workflow.signal
    def barge_in(self, request: BargeIn) -> None:
        """The caller spoke over the reply; the page stopped playing after `played_ms`."""
        speaking = self._speaking
        if speaking is not None and speaking.turn_key == request.turn_key:
            speaking.played_ms = request.played_ms
            self._interrupt_speaking()
            return
        spoken = self._spoken
        if spoken is not None and spoken[0].turn_key == request.turn_key:
            finished, result = spoken
            if finished.played_ms is None:
                finished.played_ms = request.played_ms
                self._record_spoken(finished, result)

    @workflow.signal
    def hang_up(self) -> None:
        self._touch()
        if self._s.state != ConversationState.ENDED:
            self._end("hung-up")

    @workflow.signal
    def transfer_progress(self, progress: TransferProgress) -> None:
        """The transfer child moved on; the caller's page hears it from the child itself."""
        transfer = self._s.transfer
        if transfer is None or transfer.transfer_id != progress.transfer_id:
            return
        self._touch()
        self._s.transfer = transfer.model_copy(
            update={
                "status": progress.state.value,
                "agent_name": progress.agent_name,
                "outcome": progress.reason,
            }
        )
        if (
            progress.state == TransferState.BRIDGED
            and self._s.state == ConversationState.TRANSFERRING
        ):
            self._s.state = ConversationState.BRIDGED
        self._publish()

    @workflow.query
    def status(self) -> ConversationStatus:
        return self._status()

    @workflow.query
    def transcript(self) -> list[TranscriptEntry]:
        return list(self._s.transcript)

    # ---- the agent turn ---------------------------------------------------------------

    async def _run_turn(
        self, text: str, speak_key: str | None = None, speaking_started: bool = False
    ) -> TurnResult:
        """`speaking_started`: the turn's speaker was started with the caller's speech (it
        may since have been stopped by a barge-in); it reads the reply's text stream."""
        caller = self._s.caller
        assert caller is not None  # the validator only admits turns after login
        self._s.turn += 1
        turn = self._s.turn
        self._note("user", text)
        if speak_key and speaking_started:
            speaking = self._speaking
            if speaking is not None and speaking.turn_key == speak_key:
                speaking.turn = turn
        if self._s.state == ConversationState.TRANSFERRING:
            return await self._answer_with_transfer_status(text, speak_key, speaking_started)
        workflow.set_current_details(f"**{caller.name}**, turn {turn}: “{text[:80]}”")
        human = {"type": "human", "content": text}
        context = {
            "conversation_id": self._input.conversation_id,
            "workflow_id": workflow.info().workflow_id,
            "turn": turn,
            "user_id": caller.user_id,
            "user_name": caller.name,
            "timezone": caller.timezone,
            "now_iso": workflow.now().isoformat(),
            "speak_key": speak_key,
            "last_failed_department": self._s.last_failed_department,
        }
        if speak_key and not speaking_started:
            self._start_speaking(turn, speak_key)
        try:
            output = await self._agent.ainvoke(
                {"messages": [*self._s.memory, human], "context": context},
                config={"recursion_limit": RECURSION_LIMIT},
            )
            produced: list[dict[str, Any]] = output["messages"][len(self._s.memory) + 1 :]
        except Exception as error:  # a failed step must not end the call
            workflow.logger.warning("turn %s failed: %s: %s", turn, type(error).__name__, error)
            produced = []
        reply, calls = _digest(produced)
        if not reply:
            reply = SORRY
            if speak_key and speaking_started:
                # The LLM step never closed the text stream: the speaker says the apology.
                await self._say_in_stream(speak_key, SORRY)
            elif speak_key:
                # The LLM step never closed the text stream: speak the apology instead.
                self._interrupt_speaking()
                self._start_speaking(turn, speak_key, text=SORRY)
        transfer = self._transfer_from(produced)
        if transfer is not None and self._s.state == ConversationState.ACTIVE:
            self._s.transfer = transfer
            self._s.state = ConversationState.TRANSFERRING
        self._remember(human, reply)
        self._note("assistant", reply)
        if transfer is not None and self._s.transfer is transfer:
            if workflow.patched(TRANSFER_CHILD_PATCH):
                self._start_transfer(transfer)
        self._publish()
        return TurnResult(
            turn=turn,
            user_text=text,
            turn_key=speak_key,
            reply=reply,
            tool_calls=calls,
            state=self._s.state,
            transfer=self._s.transfer,
        )

    async def _answer_with_transfer_status(
        self, text: str, speak_key: str | None, speaking_started: bool = False
    ) -> TurnResult:
        """One transfer at a time: while it runs, the caller hears where it is."""
        transfer = self._s.transfer
        assert transfer is not None
        template = STATUS_SAYS.get(transfer.status, STATUS_SAYS["requested"])
        reply = template.format(
            department=transfer.department, agent=transfer.agent_name or "an agent"
        )
        reply = f"{reply[0].upper()}{reply[1:]} Please hold on."
        self._note("assistant", reply)
        if speak_key and speaking_started:
            await self._say_in_stream(speak_key, reply)
        elif speak_key:
            self._start_speaking(self._s.turn, speak_key, text=reply)
        return TurnResult(
            turn=self._s.turn,
            user_text=text,
            turn_key=speak_key,
            reply=reply,
            state=self._s.state,
            transfer=transfer,
        )

    # ---- the transfer -----------------------------------------------------------------

    def _start_transfer(self, transfer: TransferRequest) -> None:
        caller = self._s.caller
        assert caller is not None and transfer.call_record_id is not None
        self._s.transfers += 1
        # Named from the conversation, not this run, so the id is the same on every replay.
        transfer_id = f"{workflow_id_for(self._input.conversation_id)}-transfer-{self._s.transfers}"
        self._s.transfer = transfer.model_copy(update={"transfer_id": transfer_id})
        request = TransferInput(
            transfer_id=transfer_id,
            conversation_id=self._input.conversation_id,
            parent_workflow_id=workflow.info().workflow_id,
            call_record_id=transfer.call_record_id,
            department=transfer.department,
            reason=transfer.reason,
            caller=caller,
            transcript=[
                HandOffLine(role=entry.role, text=entry.text)
                for entry in self._s.transcript[-TRANSCRIPT_FOR_AGENT:]
                if entry.role in ("user", "assistant")
            ],
            ring_timeout_s=self._input.ring_timeout_s,
            connect_timeout_s=self._input.connect_timeout_s,
        )
        self._transfer_task = asyncio.create_task(self._run_transfer(request))

    async def _run_transfer(self, request: TransferInput) -> None:
        try:
            self._child = await workflow.start_child_workflow(
                TransferWorkflow.run,
                request,
                id=request.transfer_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"transfer to {request.department}",
            )
            outcome = await self._child
        except Exception as error:  # a broken transfer must not end the call
            workflow.logger.warning("transfer %s failed: %s", request.transfer_id, error)
            outcome = TransferProgress(
                transfer_id=request.transfer_id,
                state=TransferState.FAILED,
                department=request.department,
                reason=FailureReason.ERROR,
            )
        finally:
            self._child = None
            self._transfer_task = None
        await self._after_transfer(outcome)

    async def _after_transfer(self, outcome: TransferProgress) -> None:
        """Back to the assistant, which says how the transfer went."""
        transfer = self._s.transfer
        if transfer is not None:
            self._s.transfer = transfer.model_copy(
                update={
                    "status": outcome.state.value,
                    "agent_name": outcome.agent_name,
                    "outcome": outcome.reason,
                }
            )
        if self._s.state == ConversationState.ENDED:
            self._publish()
            return
        self._s.state = ConversationState.ACTIVE
        self._touch()
        agent = outcome.agent_name or "the agent"
        if outcome.state == TransferState.FAILED:
            self._s.last_failed_department = outcome.department
            template = FAILURE_SAYS.get(outcome.reason, FAILURE_SAYS[FailureReason.ERROR])
            message = f"{template.format(department=outcome.department, agent=agent)} {OFFER}"
        else:
            self._s.last_failed_department = ""
            message = f"Your call with {agent} has ended. Is there anything else I can help with?"
        self._note("assistant", message)
        if self._s.memory and self._s.memory[-1].get("type") == "ai":
            # One assistant message per exchange: the model's memory stays well-formed.
            last = self._s.memory[-1]
            self._s.memory = [
                *self._s.memory[:-1],
                {"type": "ai", "content": f"{last.get('content', '')} {message}".strip()},
            ]
        self._publish()
        turn_key = "t" + workflow.uuid4().hex[:12]
        self._interrupt_speaking()
        self._start_speaking(self._s.turn, turn_key, text=message)
        await workflow.execute_activity(
            announce,
            AnnounceInput(
                conversation_id=self._input.conversation_id,
                text=message,
                turn=self._s.turn,
                turn_key=turn_key,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="tell the caller how the transfer went",
        )

    async def _release_transfer(self) -> None:
        """The caller left: the transfer lets go of the agent before the call closes."""
        child = self._child
        if self._transfer_task is None:
            return
        if child is not None:
            try:
                await child.signal(TransferWorkflow.caller_left)
            except Exception as error:  # the child may have just finished
                workflow.logger.info("transfer not told the caller left: %s", error)
        try:
            await workflow.wait_condition(
                lambda: self._transfer_task is None, timeout=TRANSFER_RELEASE_TIMEOUT
            )
        except TimeoutError:
            workflow.logger.warning("transfer did not finish after the caller left")

    @staticmethod
    def _transfer_from(produced: list[dict[str, Any]]) -> TransferRequest | None:
        for message in _tool_messages(produced):
            result = _tool_result(message)
            if message.get("name") == "transfer_to_agent" and result.get("ok"):
                data = result.get("data") or {}
                return TransferRequest(
                    department=str(data.get("department", "general")),
                    reason=str(data.get("reason", "")),
                    extension=str(data.get("extension", "")),
                    call_record_id=data.get("call_record_id"),
                )
        return None

    # ---- speaking ---------------------------------------------------------------------

    def _start_speaking(
        self,
        turn: int,
        turn_key: str,
        text: str | None = None,
        started_early: bool = False,
    ) -> None:
        handle = workflow.start_activity(
            speak,
            SpeakInput(
                conversation_id=self._input.conversation_id,
                turn_key=turn_key,
                text=text,
                started_early=started_early,
            ),
            start_to_close_timeout=EARLY_SPEAK_TIMEOUT if started_early else SPEAK_TIMEOUT,
            heartbeat_timeout=SPEECH_HEARTBEAT,
            retry_policy=SPEECH_RETRY,
            # A barge-in cancels; the activity then reports what it had spoken.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"speak {turn_key}",
        )
        speaking = _Speaking(turn, turn_key, handle)
        speaking.task = asyncio.create_task(self._await_speaking(speaking))
        self._speaking = speaking

    async def _await_speaking(self, speaking: _Speaking) -> None:
        try:
            result: SpeakResult | None = await speaking.handle
        except Exception as error:  # speech failing must not end the call
            workflow.logger.warning("speaking %s failed: %s", speaking.turn_key, error)
            result = None
        finally:
            if self._speaking is speaking:
                self._speaking = None
        if result is not None:
            self._spoken = (speaking, result)
            self._record_spoken(speaking, result)

    def _interrupt_speaking(self) -> None:
        if self._speaking is not None:
            self._speaking.handle.cancel()

    def _stop_speaking(self, turn_key: str) -> None:
        """Stops the speaker of `turn_key` if it is still the one speaking."""
        if self._speaking is not None and self._speaking.turn_key == turn_key:
            self._speaking.handle.cancel()

    async def _say_in_stream(self, turn_key: str, text: str) -> None:
        """Has the speaker already reading the turn's text stream say `text`."""
        if self._speaking is None or self._speaking.turn_key != turn_key:
            return  # a barge-in stopped it: nobody is listening for this reply
        try:
            await workflow.execute_local_activity(
                reply_text,
                ReplyTextInput(
                    conversation_id=self._input.conversation_id, turn_key=turn_key, text=text
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="reply text",
            )
        except Exception as error:  # the reply stands in the transcript; speech may fail
            workflow.logger.warning("reply for %s not spoken: %s", turn_key, error)
            self._stop_speaking(turn_key)

    def _record_spoken(self, speaking: _Speaking, result: SpeakResult) -> None:
        heard: str | None = None
        if speaking.played_ms is not None:
            heard = _heard_text(result, speaking.played_ms)
        for index in range(len(self._s.transcript) - 1, -1, -1):
            entry = self._s.transcript[index]
            if entry.role == "assistant" and entry.turn == speaking.turn:
                updated = entry.model_copy(update={"timings": result.timings, "heard": heard})
                self._s.transcript = [
                    *self._s.transcript[:index],
                    updated,
                    *self._s.transcript[index + 1 :],
                ]
                break
        latest = speaking.turn == self._s.turn
        if (
            heard is not None
            and latest
            and self._s.memory
            and self._s.memory[-1].get("type") == "ai"
        ):
            # The model should know the caller cut the answer short.
            note = f"{heard} [the caller interrupted here]" if heard else "[interrupted]"
            self._s.memory = [*self._s.memory[:-1], {"type": "ai", "content": note}]

    def _remember(self, human: dict[str, Any], reply: str) -> None:
        # Memory keeps the spoken exchange only; tool details stay in history, not in state.
        self._s.memory = [*self._s.memory, human, {"type": "ai", "content": reply}][
            -2 * MEMORY_TURNS :
        ]

    # ---- state bookkeeping ------------------------------------------------------------

    def _note(self, role: str, text: str) -> None:
        self._s.transcript = [
            *self._s.transcript,
            TranscriptEntry(role=role, text=text, turn=self._s.turn),
        ][-TRANSCRIPT_LIMIT:]

    def _attempts_left(self) -> int:
        return max(0, self._input.max_pin_failures - self._s.pin_failures)

    def _end(self, outcome: str) -> None:
        self._s.state = ConversationState.ENDED
        self._s.outcome = outcome
        self._publish()

    def _publish(self) -> None:
        """Keeps the Temporal UI current: search attributes and the details line."""
        caller = self._s.caller
        facts = (
            self._s.state.value,
            self._s.transfer is not None,
            str(caller.user_id) if caller else "",
            self._s.outcome,
        )
        # Each upsert is a history event, so only changes are written.
        if facts != self._published:
            self._published = facts
            state, transferred, user_id, outcome = facts
            updates: list[SearchAttributeUpdate[Any]] = [
                sa.STATE.value_set(state),
                sa.TRANSFERRED.value_set(transferred),
            ]
            if user_id:
                updates.append(sa.USER_ID.value_set(user_id))
            if outcome:
                updates.append(sa.OUTCOME.value_set(outcome))
            workflow.upsert_search_attributes(updates)
        who = caller.name if caller else "caller not logged in"
        details = f"**{self._s.state.value}** · {who} · {self._s.turn} turn(s)"
        if self._s.transfer is not None:
            details += f" · transfer to {self._s.transfer.department}"
        if self._s.outcome:
            details += f" · outcome: {self._s.outcome}"
        workflow.set_current_details(details)

    def _status(self) -> ConversationStatus:
        return ConversationStatus(
            conversation_id=self._input.conversation_id,
            state=self._s.state,
            caller_name=self._s.caller.name if self._s.caller else None,
            turn=self._s.turn,
            transfer=self._s.transfer,
            outcome=self._s.outcome,
        )


_TURN_STATES = (ConversationState.ACTIVE, ConversationState.TRANSFERRING)


def _heard_text(result: SpeakResult, played_ms: int) -> str:
    """The words the caller heard: whole sentences before `played_ms`, and the share of the
    sentence playing then, cut in proportion to the time it had played."""
    heard: list[str] = []
    for index, sentence in enumerate(result.sentences):
        if sentence.start_ms >= played_ms:
            break
        end = (
            result.sentences[index + 1].start_ms
            if index + 1 < len(result.sentences)
            else result.audio_ms
        )
        if played_ms >= end:
            heard.append(sentence.text)
            continue
        words = sentence.text.split()
        share = (played_ms - sentence.start_ms) / max(1, end - sentence.start_ms)
        heard.extend(words[: int(len(words) * share)])
        break
    return " ".join(heard)


def _tool_messages(produced: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in produced if m.get("type") == "tool"]


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    try:
        parsed = json.loads(message.get("content") or "{}")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _digest(produced: list[dict[str, Any]]) -> tuple[str, list[ToolCallSummary]]:
    """The final spoken reply and a summary of every tool call of the turn."""
    results = {m.get("tool_call_id"): _tool_result(m) for m in _tool_messages(produced)}
    calls: list[ToolCallSummary] = []
    reply = ""
    for message in produced:
        if message.get("type") != "ai":
            continue
        for call in message.get("tool_calls") or []:
            result = results.get(call.get("id"), {})
            calls.append(
                ToolCallSummary(
                    name=str(call.get("name")),
                    args=dict(call.get("args") or {}),
                    ok=bool(result.get("ok", False)),
                    say=str(result.get("say", "")),
                )
            )
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
        if isinstance(content, str) and content.strip():
            reply = content.strip()
    return reply, calls
