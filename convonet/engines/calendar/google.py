"""Google Calendar through google-api-python-client.

Every event carries a private extended property with the Convonet user id; listing,
updating and deleting only ever see events tagged for the calling user.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httplib2
from google.auth.credentials import Credentials
from google.auth.exceptions import GoogleAuthError
from google.oauth2 import credentials as oauth_credentials
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest
from sqlalchemy.ext.asyncio import AsyncSession

from convonet.engines.calendar.base import CalendarBackend, CalendarError, CalendarEventData
from convonet.settings import ConfigError, Settings

SCOPES = ["https://www.googleapis.com/auth/calendar"]
USER_TAG = "convonet_user_id"
NUM_RETRIES = 2  # the SDK's own backoff on 429 and 5xx
HTTP_TIMEOUT_S = 15
PAGE_SIZE = 250


class _NotFound(CalendarError):
    pass


class _AlreadyExists(CalendarError):
    pass


def event_id_for(idempotency_key: str) -> str:
    """The Google event id a create with this key always gets, so a retry cannot duplicate.

    Hex digits are a subset of Google's base32hex id alphabet (0-9, a-v).
    """
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def load_credentials(settings: Settings) -> Credentials:
    try:
        # The token file wins: next to it, the credentials file is often an OAuth client secret.
        if settings.google_calendar_token_file:
            return oauth_credentials.Credentials.from_authorized_user_file(
                str(settings.google_calendar_token_file), scopes=SCOPES
            )
        if settings.google_calendar_credentials_file:
            return service_account.Credentials.from_service_account_file(
                str(settings.google_calendar_credentials_file), scopes=SCOPES
            )
    except (OSError, ValueError) as error:
        raise ConfigError(f"configuration error: Google Calendar credentials: {error}") from None
    raise ConfigError(
        "configuration error: set GOOGLE_CALENDAR_CREDENTIALS_FILE or GOOGLE_CALENDAR_TOKEN_FILE"
    )


def _error_for(error: HttpError) -> CalendarError:
    status = error.status_code
    if status in (404, 410):
        return _NotFound("I couldn't find that in your Google calendar.")
    if status == 409:
        return _AlreadyExists("That event is already in your Google calendar.")
    if status in (401, 403):
        return CalendarError("Google Calendar refused access, so I couldn't use your calendar.")
    if status == 429:
        return CalendarError("Google Calendar is busy right now. Please try again in a moment.")
    return CalendarError("Google Calendar isn't responding right now.")


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("calendar times must be timezone-aware")
    return moment.isoformat()


def _parse_time(moment: dict[str, Any]) -> datetime:
    if "dateTime" in moment:
        return datetime.fromisoformat(moment["dateTime"])
    # All-day events carry a bare date: take midnight in the event's time zone.
    zone = ZoneInfo(moment.get("timeZone") or "UTC")
    return datetime.combine(date.fromisoformat(moment["date"]), time(), zone)


def _owner(event: dict[str, Any]) -> str | None:
    private = event.get("extendedProperties", {}).get("private", {})
    owner = private.get(USER_TAG)
    return owner if isinstance(owner, str) else None


def _to_data(event: dict[str, Any]) -> CalendarEventData:
    return CalendarEventData(
        id=event["id"],
        title=event.get("summary", ""),
        starts_at=_parse_time(event["start"]),
        ends_at=_parse_time(event["end"]),
        location=event.get("location", ""),
    )


class GoogleCalendar(CalendarBackend):
    """Ignores `session`: Google is the store, and idempotency comes from the event id."""

    name = "google"

    def __init__(
        self,
        calendar_id: str = "primary",
        *,
        credentials: Credentials | None = None,
        http: Any = None,
        api_endpoint: str | None = None,
    ) -> None:
        if credentials is None and http is None:
            raise ValueError("GoogleCalendar needs credentials or an http transport")
        self._calendar_id = calendar_id
        self._credentials = credentials
        self._http = http
        self._service = build(
            "calendar",
            "v3",
            http=self._transport(),
            static_discovery=True,
            client_options={"api_endpoint": api_endpoint} if api_endpoint else None,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> GoogleCalendar:
        return cls(settings.google_calendar_id, credentials=load_credentials(settings))

    def _transport(self) -> Any:
        if self._http is not None:
            return self._http
        # httplib2 connections are not thread-safe, so each worker-thread call gets its own.
        return AuthorizedHttp(self._credentials, http=httplib2.Http(timeout=HTTP_TIMEOUT_S))

    def _events(self) -> Any:
        return self._service.events()

    async def _execute(self, request: HttpRequest) -> dict[str, Any]:
        try:
            result = await asyncio.to_thread(
                request.execute, http=self._transport(), num_retries=NUM_RETRIES
            )
        except HttpError as error:
            raise _error_for(error) from error
        except (httplib2.HttpLib2Error, OSError, GoogleAuthError) as error:
            raise CalendarError("I couldn't reach Google Calendar right now.") from error
        return result or {}

    async def _owned_event(self, user_id: int, event_id: str) -> dict[str, Any] | None:
        if not event_id:
            return None
        try:
            event = await self._execute(
                self._events().get(calendarId=self._calendar_id, eventId=event_id)
            )
        except _NotFound:
            return None
        # Deleted events stay readable by id with status "cancelled".
        if event.get("status") == "cancelled" or _owner(event) != str(user_id):
            return None
        return event

    async def create(
        self,
        session: AsyncSession,
        user_id: int,
        title: str,
        starts_at: datetime,
        ends_at: datetime,
        location: str,
        idempotency_key: str,
    ) -> CalendarEventData:
        event_id = event_id_for(idempotency_key)
        body = {
            "id": event_id,
            "summary": title,
            "location": location,
            "start": {"dateTime": _rfc3339(starts_at)},
            "end": {"dateTime": _rfc3339(ends_at)},
            "extendedProperties": {"private": {USER_TAG: str(user_id)}},
        }
        try:
            event = await self._execute(
                self._events().insert(calendarId=self._calendar_id, body=body)
            )
        except _AlreadyExists as error:
            # A retried create whose first attempt landed: answer with that event.
            existing = await self._owned_event(user_id, event_id)
            if existing is None:
                raise error
            event = existing
        return _to_data(event)

    async def list(
        self, session: AsyncSession, user_id: int, start: datetime, end: datetime
    ) -> list[CalendarEventData]:
        events = self._events()
        request = events.list(
            calendarId=self._calendar_id,
            timeMin=_rfc3339(start),
            timeMax=_rfc3339(end),
            privateExtendedProperty=f"{USER_TAG}={user_id}",
            singleEvents=True,
            orderBy="startTime",
            maxResults=PAGE_SIZE,
        )
        found: list[dict[str, Any]] = []
        while request is not None:
            page = await self._execute(request)
            found.extend(page.get("items", []))
            request = events.list_next(request, page)
        # The query already filters by tag; checking again keeps a provider slip from leaking.
        return [_to_data(event) for event in found if _owner(event) == str(user_id)]

    async def update(
        self,
        session: AsyncSession,
        user_id: int,
        event_id: str,
        title: str | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        location: str | None = None,
    ) -> CalendarEventData | None:
        existing = await self._owned_event(user_id, event_id)
        if existing is None:
            return None
        patch: dict[str, Any] = {}
        if title is not None:
            patch["summary"] = title
        if starts_at is not None:
            patch["start"] = {"dateTime": _rfc3339(starts_at)}
        if ends_at is not None:
            patch["end"] = {"dateTime": _rfc3339(ends_at)}
        if location is not None:
            patch["location"] = location
        if not patch:
            return _to_data(existing)
        try:
            event = await self._execute(
                self._events().patch(calendarId=self._calendar_id, eventId=event_id, body=patch)
            )
        except _NotFound:
            return None
        return _to_data(event)

    async def delete(self, session: AsyncSession, user_id: int, event_id: str) -> bool:
        if await self._owned_event(user_id, event_id) is None:
            return False
        try:
            await self._execute(
                self._events().delete(calendarId=self._calendar_id, eventId=event_id)
            )
        except _NotFound:
            return False
        return True
