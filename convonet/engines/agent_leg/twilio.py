"""Twilio mode: Twilio calls the agent's extension on FusionPBX over SIP, and its TwiML
connects a bidirectional Media Stream back to our edge, which bridges it to the caller.

Progress arrives as Twilio status callbacks at `/twilio/status/<transfer id>`; the media
stream proves itself with a one-time token given in the TwiML."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote
from xml.sax.saxutils import quoteattr

import redis.asyncio as aioredis
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from twilio.rest.api.v2010.account.call import CallInstance

from convonet.engines.agent_leg.base import CONVERSATION_HEADER, AgentLeg, DialRequest
from convonet.settings import Settings

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
# The media token lives until the call could no longer be connecting.
TOKEN_GRACE_S = 120
# A call's status while it may still ring or talk (Twilio's list filters take one each).
LIVE_STATUSES = ("queued", "ringing", "in-progress")
# How far Twilio's clock may trail the database's when matching a call to a dial.
CLOCK_SKEW = timedelta(seconds=5)


def media_token_key(transfer_id: str) -> str:
    return f"convonet:twilio-media:{transfer_id}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def websocket_base(public_base_url: str) -> str:
    base = public_base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://")
    return "ws://" + base.removeprefix("http://")


class TwilioLegError(Exception):
    pass


class TwilioAgentLeg(AgentLeg):
    name = "twilio"

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        assert settings.twilio_enabled
        self.settings = settings
        self.redis = redis
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token)
        if settings.twilio_api_base_url:
            self.client.api.base_url = settings.twilio_api_base_url.rstrip("/")

    def twiml(self, transfer_id: str, token: str) -> str:
        url = f"{websocket_base(self.settings.public_base_url)}/twilio/media/{transfer_id}"
        return (
            "<Response><Connect>"
            f"<Stream url={quoteattr(url)}>"
            f'<Parameter name="token" value={quoteattr(token)}/>'
            "</Stream></Connect></Response>"
        )

    def sip_address(self, extension: str) -> str:
        return f"sip:{extension}@{self.settings.fusionpbx_domain}"

    def sip_uri(self, request: DialRequest) -> str:
        # Twilio passes X- query parameters of a SIP URI on as SIP headers.
        header = f"{CONVERSATION_HEADER}={quote(request.conversation_id)}"
        return f"{self.sip_address(request.extension)}?{header}"

    async def dial(self, request: DialRequest) -> str:
        token = secrets.token_urlsafe(24)
        await self.redis.set(
            media_token_key(request.transfer_id),
            token_digest(token),
            ex=request.ring_timeout_s + TOKEN_GRACE_S,
        )
        public = self.settings.public_base_url.rstrip("/")
        options: dict[str, object] = {
            "to": self.sip_uri(request),
            "from_": self.settings.twilio_from_number,
            "twiml": self.twiml(request.transfer_id, token),
            "status_callback": f"{public}/twilio/status/{request.transfer_id}",
            "status_callback_event": STATUS_EVENTS,
            "status_callback_method": "POST",
            "timeout": request.ring_timeout_s,
        }
        if self.settings.twilio_sip_username and self.settings.twilio_sip_password:
            options["sip_auth_username"] = self.settings.twilio_sip_username
            options["sip_auth_password"] = self.settings.twilio_sip_password
        try:
            call = await asyncio.to_thread(self.client.calls.create, **options)
        except TwilioRestException as error:
            raise TwilioLegError(f"Twilio refused the call: {error.status} {error.msg}") from None
        return str(call.sid)

    async def find_dialled(self, request: DialRequest, since: datetime) -> str | None:
        if since.tzinfo is None:  # SQLite hands back naive UTC
            since = since.replace(tzinfo=UTC)

        def live_calls() -> list[CallInstance]:
            return [
                call
                for status in LIVE_STATUSES
                for call in self.client.calls.list(status=status, page_size=50, limit=50)
            ]

        try:
            calls = await asyncio.to_thread(live_calls)
        except TwilioException as error:  # a failed page is not a TwilioRestException
            raise TwilioLegError(f"Twilio refused to list calls: {error}") from None
        ours = {
            call.date_created: call.sid
            for call in calls
            if call.sid
            and call.date_created
            and call.date_created >= since - CLOCK_SKEW
            and self._dialled_by(request, call.to or "")
        }
        return ours[max(ours)] if ours else None

    def _dialled_by(self, request: DialRequest, to: str) -> bool:
        """True when a call's `to` is the request's SIP URI (with or without its headers)."""
        address, _, headers = to.partition("?")
        if address != self.sip_address(request.extension):
            return False
        named = parse_qs(headers).get(CONVERSATION_HEADER)
        return named is None or named == [request.conversation_id]

    async def hang_up(self, transfer_id: str, leg_id: str, agent_id: int) -> None:
        await self.redis.delete(media_token_key(transfer_id))
        if not leg_id:
            return
        try:
            call = await asyncio.to_thread(self.client.calls(leg_id).fetch)
            # A call still ringing is canceled; one in progress is completed.
            status = (
                "canceled" if call.status in ("queued", "ringing", "initiated") else "completed"
            )
            if call.status not in ("completed", "canceled", "busy", "failed", "no-answer"):
                await asyncio.to_thread(self.client.calls(leg_id).update, status=status)
        except TwilioRestException as error:
            if error.status != 404:
                raise TwilioLegError(
                    f"Twilio refused the hang-up: {error.status} {error.msg}"
                ) from None
