"""The caller's Socket.IO namespace: connect, authenticate, text turns and hang-up.

Every event answers through its acknowledgement with an `Ack`; state changes are also
pushed as `status` events and failures as `error` events. Before a successful login, every
event except `authenticate` is refused.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import socketio
from pydantic import BaseModel, ValidationError
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.events_hub import EventHub
from api.protocol import (
    NAMESPACE,
    Ack,
    AudioFrameIn,
    AuthenticateIn,
    AuthResultOut,
    BargeInIn,
    ConnectAuth,
    ErrorOut,
    EventNamespace,
    HangUpIn,
    MicIn,
    MicStateOut,
    ReplyOut,
    StatusOut,
    TextTurnIn,
)
from api.services import EdgeServices
from api.voice.connection import VoiceConnection
from convonet import events, metrics, redis_keys
from convonet.security import is_valid_pin_format
from workflows.conversation.models import (
    AuthRequest,
    ConversationInput,
    ConversationState,
    ConversationStatus,
    TurnRequest,
    TurnResult,
    workflow_id_for,
)
from workflows.conversation.workflow import ConversationWorkflow

log = logging.getLogger("convonet.api.caller")


def _client_address(environ: dict[str, Any]) -> str:
    scope = environ.get("asgi.scope") or {}
    client = scope.get("client")
    if client:
        return str(client[0])
    return str(environ.get("REMOTE_ADDR", "unknown"))


def _failure(code: str, message: str) -> dict[str, Any]:
    return Ack(ok=False, error=ErrorOut(code=code, message=message)).model_dump(mode="json")  # type: ignore[arg-type]


def _success(data: BaseModel) -> dict[str, Any]:
    return Ack(ok=True, data=data.model_dump(mode="json")).model_dump(mode="json")


def _update_error_message(error: WorkflowUpdateFailedError) -> str:
    cause = error.cause
    return getattr(cause, "message", None) or str(cause or error)


class CallerNamespace(EventNamespace):
    def __init__(self, services: EdgeServices, hub: EventHub) -> None:
        super().__init__(NAMESPACE)
        self.services = services
        self.hub = hub
        # Live events of each logged-in connection's conversation (transfer progress).
        self.following: dict[str, Callable[[], None]] = {}
        self.settings = services.settings
        self.redis = services.redis
        # Voice state of each logged-in connection of this process (frames are per socket).
        self.voices: dict[str, VoiceConnection] = {}
        # Logged-in connections of this process, for the active-conversations gauge.
        self.logged_in: set[str] = set()

    # ---- connection -------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            request = ConnectAuth.model_validate(auth or {})
        except ValidationError:
            raise socketio.exceptions.ConnectionRefusedError("bad connection parameters") from None
        address = _client_address(environ)
        conversation_id, caller = await self._resumable(request)
        try:
            status = await self._attach(conversation_id or uuid.uuid4().hex)
            if status.state == ConversationState.ENDED:
                caller = None
                status = await self._attach(uuid.uuid4().hex)
        except (RPCError, RuntimeError, TimeoutError) as error:
            log.warning("cannot reach Temporal on connect: %s", error)
            raise socketio.exceptions.ConnectionRefusedError(
                "the assistant is unavailable right now"
            ) from None
        await self.save_session(
            sid,
            {
                "conversation_id": status.conversation_id,
                "address": address,
                "authenticated": caller is not None,
                "session_token": request.session_token if caller else None,
            },
        )
        await self._push_status(sid, status, authenticated=caller is not None)
        if caller is not None:
            await self._follow(sid, status.conversation_id)
            transfer = status.transfer
            if transfer is not None and transfer.status in ("answered", "bridged"):
                session = await self.get_session(sid)
                await self._voice(sid, session).enter_bridge(transfer.transfer_id)

    async def on_disconnect(self, sid: str, *args: Any) -> None:
        self._track(sid, logged_in=False)
        stop = self.following.pop(sid, None)
        if stop is not None:
            stop()
        voice = self.voices.pop(sid, None)
        if voice is not None:
            await voice.aclose()

    async def _resumable(self, request: ConnectAuth) -> tuple[str | None, dict[str, Any] | None]:
        """A conversation may be resumed only with the session token issued at login."""
        if not (request.conversation_id and request.session_token):
            return None, None
        raw = await self.redis.get(
            redis_keys.session(redis_keys.token_digest(request.session_token))
        )
        if not raw:
            return None, None
        session = json.loads(raw)
        if session.get("conversation_id") != request.conversation_id:
            return None, None
        return request.conversation_id, session

    async def _attach(self, conversation_id: str) -> ConversationStatus:
        start = WithStartWorkflowOperation(
            ConversationWorkflow.run,
            ConversationInput(
                conversation_id=conversation_id,
                idle_timeout_s=self.settings.idle_timeout_s,
                max_pin_failures=self.settings.max_pin_failures_per_conversation,
                continue_as_new_after_events=self.settings.history_event_limit,
                ring_timeout_s=self.settings.transfer_ring_timeout_s,
                connect_timeout_s=self.settings.transfer_connect_timeout_s,
            ),
            id=workflow_id_for(conversation_id),
            task_queue=self.settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary="Convonet conversation",
        )
        return await (await self.services.temporal()).execute_update_with_start_workflow(
            ConversationWorkflow.attach, start_workflow_operation=start
        )

    # ---- events -----------------------------------------------------------------------

    async def on_authenticate(self, sid: str, data: Any = None) -> dict[str, Any]:
        session = await self.get_session(sid)
        try:
            request = AuthenticateIn.model_validate(data)
        except ValidationError:
            return await self._fail(sid, "bad_request", 'Send your PIN as {"pin": "1234"}.')
        if not is_valid_pin_format(request.pin):
            return await self._fail(sid, "bad_request", "A PIN is 4 to 8 digits.")
        if session["authenticated"]:
            return await self._fail(sid, "rejected", "Already logged in.")
        pin_token = secrets.token_urlsafe(24)
        session_token = secrets.token_urlsafe(32)
        await self.redis.set(
            redis_keys.pin_handoff(pin_token), request.pin, ex=redis_keys.PIN_HANDOFF_TTL_S
        )
        handle = await self._workflow(session)
        try:
            result = await handle.execute_update(
                ConversationWorkflow.authenticate,
                AuthRequest(
                    pin_token=pin_token,
                    client_address=session["address"],
                    session_digest=redis_keys.token_digest(session_token),
                ),
            )
        except WorkflowUpdateFailedError as error:
            return await self._fail(sid, "rejected", _update_error_message(error))
        except RPCError as error:
            return await self._unavailable(sid, error)
        finally:
            await self.redis.delete(redis_keys.pin_handoff(pin_token))
        if result.ok:
            session.update(authenticated=True, session_token=session_token)
            await self.save_session(sid, session)
            self._track(sid, logged_in=True)
            await self._follow(sid, session["conversation_id"])
        out = AuthResultOut(
            ok=result.ok,
            reason=result.reason,
            greeting=result.greeting,
            caller_name=result.caller_name,
            attempts_left=result.attempts_left,
            session_token=session_token if result.ok else None,
            state=result.state,
        )
        if result.state == ConversationState.ENDED:
            await self._push_status(
                sid,
                ConversationStatus(conversation_id=session["conversation_id"], state=result.state),
                authenticated=False,
            )
        return _success(out)

    async def on_text_turn(self, sid: str, data: Any = None) -> dict[str, Any]:
        session = await self._require_login(sid)
        if session is None:
            return await self._fail(sid, "not_authenticated", "Please log in with your PIN first.")
        try:
            request = TextTurnIn.model_validate(data)
        except ValidationError:
            return await self._fail(sid, "bad_request", 'Send text as {"text": "..."}.')
        started = time.perf_counter()
        try:
            if request.speak:
                result, latency_ms = await self._voice(sid, session).spoken_text_turn(request.text)
            else:
                handle = await self._workflow(session)
                result = await handle.execute_update(
                    ConversationWorkflow.turn, TurnRequest(text=request.text)
                )
                latency_ms = round((time.perf_counter() - started) * 1000)
        except WorkflowUpdateFailedError as error:
            metrics.count_turn_error("text")
            return await self._fail(sid, "rejected", _update_error_message(error))
        except RPCError as error:
            metrics.count_turn_error("text")
            return await self._unavailable(sid, error)
        metrics.count_turn("text")
        reply = ReplyOut.of(result, latency_ms)
        if result.state != ConversationState.ACTIVE:
            await self._push_turn_state(sid, session["conversation_id"], result)
        return _success(reply)

    async def on_mic(self, sid: str, data: Any = None) -> dict[str, Any]:
        session = await self._require_login(sid)
        if session is None:
            return await self._fail(sid, "not_authenticated", "Please log in with your PIN first.")
        try:
            request = MicIn.model_validate(data)
        except ValidationError:
            return await self._fail(
                sid, "bad_request", 'Send {"open": true, "mode": "hands_free" or "push_to_talk"}.'
            )
        self._voice(sid, session).mic(request)
        return _success(MicStateOut(open=request.open, mode=request.mode if request.open else None))

    async def on_audio_frame(self, sid: str, data: Any = None) -> None:
        # No awaits before the frame is queued: frames keep their order on the wire.
        voice = self.voices.get(sid)
        if voice is None:
            await self._fail(sid, "not_authenticated", "Log in and open the microphone first.")
            return
        try:
            frame = AudioFrameIn.model_validate(data)
        except ValidationError:
            await voice.refuse_malformed()
            return
        await voice.frame(frame)

    async def on_barge_in(self, sid: str, data: Any = None) -> dict[str, Any]:
        session = await self._require_login(sid)
        if session is None:
            return await self._fail(sid, "not_authenticated", "Please log in with your PIN first.")
        try:
            request = BargeInIn.model_validate(data)
        except ValidationError:
            return await self._fail(
                sid, "bad_request", 'Send {"turn_key": "...", "played_ms": 1234}.'
            )
        try:
            await self._voice(sid, session).barge_in(request)
        except RPCError as error:
            return await self._unavailable(sid, error)
        return Ack(ok=True, data={}).model_dump(mode="json")

    def _voice(self, sid: str, session: dict[str, Any]) -> VoiceConnection:
        voice = self.voices.get(sid)
        if voice is None:
            conversation_id = session["conversation_id"]

            async def emit(event: str, payload: dict[str, Any]) -> None:
                await self.emit(event, payload, to=sid)

            async def workflow() -> WorkflowHandle[Any, Any]:
                return await self._workflow(session)

            async def on_state(result: TurnResult) -> None:
                await self._push_turn_state(sid, conversation_id, result)

            voice = VoiceConnection(self.services, conversation_id, emit, workflow, on_state)
            self.voices[sid] = voice
        return voice

    async def _push_turn_state(self, sid: str, conversation_id: str, result: TurnResult) -> None:
        await self._push_status(
            sid,
            ConversationStatus(
                conversation_id=conversation_id, state=result.state, transfer=result.transfer
            ),
            authenticated=True,
        )

    async def on_hang_up(self, sid: str, data: Any = None) -> dict[str, Any]:
        session = await self._require_login(sid)
        if session is None:
            return await self._fail(sid, "not_authenticated", "Please log in with your PIN first.")
        try:
            # No payload is `{}`; a falsy non-object (0, "", []) is malformed, not a hang-up.
            HangUpIn.model_validate({} if data is None else data)
        except ValidationError:
            return await self._fail(sid, "bad_request", "hang_up takes no arguments.")
        handle = await self._workflow(session)
        try:
            await handle.signal(ConversationWorkflow.hang_up)
        except RPCError as error:
            return await self._unavailable(sid, error)
        session.update(authenticated=False, session_token=None)
        await self.save_session(sid, session)
        voice = self.voices.pop(sid, None)
        if voice is not None:
            await voice.aclose()
        status = ConversationStatus(
            conversation_id=session["conversation_id"], state=ConversationState.ENDED
        )
        await self._push_status(sid, status, authenticated=False)
        return _success(
            StatusOut(
                conversation_id=status.conversation_id, state=status.state, authenticated=False
            )
        )

    # ---- live events of the conversation -----------------------------------------------

    async def _follow(self, sid: str, conversation_id: str) -> None:
        if sid in self.following:
            return

        async def deliver(event: events.Event) -> None:
            await self._on_event(sid, event)

        self.following[sid] = self.hub.add(events.conversation_channel(conversation_id), deliver)
        await self.hub.wait_ready()

    async def _on_event(self, sid: str, event: events.Event) -> None:
        session = await self._require_login(sid)
        if session is None:
            return
        if isinstance(event, events.TransferEvent):
            await self.emit("transfer", event.model_dump(exclude={"type"}), to=sid)
            if event.state in ("answered", "bridged"):
                await self._voice(sid, session).enter_bridge(event.transfer_id)
            elif event.state in ("ended", "failed") and sid in self.voices:
                await self.voices[sid].leave_bridge()
        elif isinstance(event, events.AssistantSays):
            self._voice(sid, session).relay(event.turn_key)
            await self.emit("assistant", event.model_dump(exclude={"type"}), to=sid)

    # ---- helpers ----------------------------------------------------------------------

    async def _workflow(self, session: dict[str, Any]) -> WorkflowHandle[Any, Any]:
        client = await self.services.temporal()
        return client.get_workflow_handle(workflow_id_for(session["conversation_id"]))

    async def _require_login(self, sid: str) -> dict[str, Any] | None:
        session = await self.get_session(sid)
        if not session.get("authenticated"):
            return None
        token = session.get("session_token") or ""
        # The session lives in Redis so logout, expiry or the end of the call revoke it.
        if not await self.redis.exists(redis_keys.session(redis_keys.token_digest(token))):
            session.update(authenticated=False, session_token=None)
            await self.save_session(sid, session)
            self._track(sid, logged_in=False)
            return None
        return session

    def _track(self, sid: str, logged_in: bool) -> None:
        """Keeps the active-conversations gauge in step with this process's logins."""
        if logged_in and sid not in self.logged_in:
            self.logged_in.add(sid)
            metrics.ACTIVE_CONVERSATIONS.inc()
        elif not logged_in and sid in self.logged_in:
            self.logged_in.discard(sid)
            metrics.ACTIVE_CONVERSATIONS.dec()

    async def _push_status(self, sid: str, status: ConversationStatus, authenticated: bool) -> None:
        self._track(sid, logged_in=authenticated and status.state != ConversationState.ENDED)
        out = StatusOut(
            conversation_id=status.conversation_id,
            state=status.state,
            authenticated=authenticated,
            caller_name=status.caller_name,
            transfer=status.transfer,
        )
        await self.emit("status", out.model_dump(mode="json"), to=sid)

    async def _fail(self, sid: str, code: str, message: str) -> dict[str, Any]:
        ack = _failure(code, message)
        await self.emit("error", ack["error"], to=sid)
        return ack

    async def _unavailable(self, sid: str, error: RPCError) -> dict[str, Any]:
        if error.status == RPCStatusCode.NOT_FOUND:
            # The workflow has completed: the conversation is over, not the service.
            return await self._fail(
                sid, "rejected", "This conversation has ended. Reconnect to start a new one."
            )
        log.warning("Temporal call failed: %s", error.message)
        return await self._fail(sid, "unavailable", "The assistant is unavailable; try again.")
