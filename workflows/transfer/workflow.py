"""TransferWorkflow: rings a human agent for a caller and follows the call to its end.

A child of the conversation. Its states are requested -> dialing -> ringing -> answered
-> bridged -> ended, or failed (no-answer, busy, rejected, no-agent, error). Each change is
written to the call record, shown to the caller and the agent, and signalled to the
parent. The agent leg's progress arrives as `leg_event` signals (Twilio status callbacks,
or the dashboard's buttons), so a crash of any process loses nothing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.transfer import (
        DialInput,
        HangUpInput,
        RecordInput,
        dial_agent,
        hang_up_agent,
        record_transfer,
        route_transfer,
    )
    from workflows.transfer.models import (
        FailureReason,
        LegEvent,
        LegStatus,
        RouteResult,
        TransferInput,
        TransferProgress,
        TransferState,
    )

# Each step is a database write, a publish or one Twilio REST call: a worker that dies in
# one is noticed (and the step retried elsewhere) after this long, while the caller waits.
STEP_TIMEOUT = timedelta(seconds=10)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=300), maximum_interval=timedelta(seconds=5)
)
DIAL_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=500))
PARENT_SIGNAL = "transfer_progress"
_LEG_FAILURES = {
    LegStatus.BUSY: FailureReason.BUSY,
    LegStatus.NO_ANSWER: FailureReason.NO_ANSWER,
    LegStatus.DECLINED: FailureReason.REJECTED,
    LegStatus.FAILED: FailureReason.ERROR,
    # Twilio reports "completed" for a leg that ended before anyone answered.
    LegStatus.COMPLETED: FailureReason.REJECTED,
}


class _Finished(Exception):
    """Ends the transfer early with this outcome."""

    def __init__(self, state: TransferState, reason: str) -> None:
        self.state = state
        self.reason = reason


@workflow.defn
class TransferWorkflow:
    @workflow.init
    def __init__(self, input: TransferInput) -> None:
        self._input = input
        self._events: list[LegEvent] = []
        self._caller_left = False
        self._leg_id = ""
        self._agent = RouteResult()
        self._progress = TransferProgress(
            transfer_id=input.transfer_id,
            state=TransferState.REQUESTED,
            department=input.department,
        )

    @workflow.run
    async def run(self, input: TransferInput) -> TransferProgress:
        try:
            await self._enter(TransferState.REQUESTED)
            await self._connect()
            await self._talk()
        except _Finished as finished:
            await self._enter(finished.state, finished.reason)
        except asyncio.CancelledError:
            # The conversation closed under us: let go of the agent, then stop.
            await self._release()
            await self._enter(TransferState.ENDED, "caller-left")
        return self._progress

    # ---- signals and queries ----------------------------------------------------------

    @workflow.signal
    def leg_event(self, event: LegEvent) -> None:
        if self._progress.state.finished:
            return
        if event.leg_id and self._leg_id and event.leg_id != self._leg_id:
            return  # a late report about some other call
        self._events.append(event)

    @workflow.signal
    def caller_left(self) -> None:
        self._caller_left = True

    @workflow.query
    def progress(self) -> TransferProgress:
        return self._progress

    # ---- phases -----------------------------------------------------------------------

    async def _connect(self) -> None:
        """Routes, dials and rings until the agent answers and their audio is bridged."""
        self._agent = await workflow.execute_activity(
            route_transfer,
            self._input,
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=STEP_RETRY,
            summary=f"route {self._input.department}",
        )
        if self._agent.agent_id is None:
            raise _Finished(TransferState.FAILED, FailureReason.NO_AGENT)
        self._progress.agent_name = self._agent.agent_name
        await self._enter(TransferState.DIALING)
        try:
            self._leg_id = await workflow.execute_activity(
                dial_agent,
                DialInput(
                    transfer_id=self._input.transfer_id,
                    conversation_id=self._input.conversation_id,
                    call_record_id=self._input.call_record_id,
                    agent_id=self._agent.agent_id,
                    extension=self._agent.extension,
                    ring_timeout_s=self._input.ring_timeout_s,
                ),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=DIAL_RETRY,
                summary=f"dial extension {self._agent.extension}",
            )
        except ActivityError as error:
            workflow.logger.warning("dialling failed: %s", error.cause or error)
            raise _Finished(TransferState.FAILED, FailureReason.ERROR) from None

        ring_deadline = workflow.now() + timedelta(seconds=self._input.ring_timeout_s)
        while True:
            event = await self._next_event(ring_deadline)
            if event is None:
                await self._release()
                raise _Finished(TransferState.FAILED, FailureReason.NO_ANSWER)
            if event.status == LegStatus.RINGING:
                if self._progress.state == TransferState.DIALING:
                    await self._enter(TransferState.RINGING)
            elif event.status in (LegStatus.ANSWERED, LegStatus.BRIDGED):
                if event.status == LegStatus.BRIDGED:
                    self._events.insert(0, event)
                break
            else:
                raise _Finished(TransferState.FAILED, _LEG_FAILURES[event.status])
        await self._enter(TransferState.ANSWERED)

        connect_deadline = workflow.now() + timedelta(seconds=self._input.connect_timeout_s)
        while True:
            event = await self._next_event(connect_deadline)
            if event is None:
                await self._release()
                raise _Finished(TransferState.FAILED, FailureReason.ERROR)
            if event.status == LegStatus.BRIDGED:
                break
            if event.status in (LegStatus.COMPLETED, LegStatus.FAILED):
                raise _Finished(TransferState.ENDED, "agent-hung-up")
        await self._enter(TransferState.BRIDGED)

    async def _talk(self) -> None:
        """Caller and agent talk until one of them hangs up."""
        while True:
            event = await self._next_event(None)
            if event is None:
                await self._release()
                raise _Finished(TransferState.ENDED, "caller-hung-up")
            if event.status in (LegStatus.COMPLETED, LegStatus.FAILED, LegStatus.DECLINED):
                raise _Finished(TransferState.ENDED, "agent-hung-up")

    async def _next_event(self, deadline: datetime | None) -> LegEvent | None:
        """The next leg event; None when the deadline passes or the caller has left."""
        timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
        try:
            await workflow.wait_condition(
                lambda: bool(self._events) or self._caller_left, timeout=timeout
            )
        except TimeoutError:
            return None
        if self._caller_left:
            if deadline is not None:
                await self._release()
                raise _Finished(TransferState.ENDED, "caller-hung-up")
            return None
        return self._events.pop(0)

    async def _release(self) -> None:
        """Hangs up the agent leg (stops the ringing, or ends the call)."""
        if self._agent.agent_id is None or not self._leg_id:
            return
        try:
            await workflow.execute_activity(
                hang_up_agent,
                HangUpInput(
                    transfer_id=self._input.transfer_id,
                    leg_id=self._leg_id,
                    agent_id=self._agent.agent_id,
                ),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=5),
                summary="hang up agent leg",
            )
        except ActivityError as error:
            workflow.logger.warning("hanging up the agent leg failed: %s", error.cause or error)

    # ---- bookkeeping ------------------------------------------------------------------

    async def _enter(self, state: TransferState, reason: str = "") -> None:
        self._progress = self._progress.model_copy(update={"state": state, "reason": reason})
        detail = f"**{state.value}** · {self._input.department}"
        if self._agent.agent_name:
            detail += f" · {self._agent.agent_name} (ext {self._agent.extension})"
        if reason:
            detail += f" · {reason}"
        workflow.set_current_details(detail)
        try:
            await workflow.execute_activity(
                record_transfer,
                RecordInput(
                    transfer_id=self._input.transfer_id,
                    conversation_id=self._input.conversation_id,
                    call_record_id=self._input.call_record_id,
                    department=self._input.department,
                    state=state,
                    agent_id=self._agent.agent_id,
                    agent_name=self._agent.agent_name,
                    leg_id=self._leg_id,
                    reason=reason,
                ),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=10),
                summary=f"record {state.value}",
            )
        except ActivityError as error:
            workflow.logger.warning("recording %s failed: %s", state.value, error.cause or error)
        try:
            await workflow.get_external_workflow_handle(self._input.parent_workflow_id).signal(
                PARENT_SIGNAL, self._progress
            )
        except Exception as error:  # the conversation may already be closed
            workflow.logger.info("parent not told of %s: %s", state.value, error)
