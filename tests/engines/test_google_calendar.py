"""GoogleCalendar through the real google-api-python-client, on an HttpMockSequence."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from googleapiclient.http import HttpMockSequence

from convonet.engines.calendar.base import CalendarError
from convonet.engines.calendar.factory import calendar_backend
from convonet.engines.calendar.google import GoogleCalendar, event_id_for
from convonet.settings import ConfigError, load_settings

EVENTS_PATH = "/calendar/v3/calendars/team%40example.com/events"
PARIS = timezone(timedelta(hours=2))
START = datetime(2030, 5, 1, 10, 0, tzinfo=PARIS)
END = START + timedelta(hours=1)


def _ok(body: dict[str, Any] | str, status: int = 200) -> tuple[dict[str, str], str]:
    return {"status": str(status)}, body if isinstance(body, str) else json.dumps(body)


def _error(status: int, reason: str, message: str) -> tuple[dict[str, str], str]:
    body = {"error": {"code": status, "message": message, "errors": [{"reason": reason}]}}
    return {"status": str(status)}, json.dumps(body)


def _event(event_id: str, owner: str, title: str = "Dentist", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "calendar#event",
        "id": event_id,
        "status": "confirmed",
        "summary": title,
        "location": "High Street",
        "start": {"dateTime": "2030-05-01T10:00:00+02:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2030-05-01T11:00:00+02:00", "timeZone": "Europe/Paris"},
        "extendedProperties": {"private": {"convonet_user_id": owner}},
        **extra,
    }


def _calendar(*responses: tuple[dict[str, str], str]) -> tuple[GoogleCalendar, HttpMockSequence]:
    http = HttpMockSequence(list(responses))
    return GoogleCalendar("team@example.com", http=http), http


def _request(http: HttpMockSequence, index: int) -> tuple[str, str, dict[str, list[str]], Any]:
    uri, method, body, _headers = http.request_sequence[index]
    parts = urlsplit(uri)
    return method, parts.path, parse_qs(parts.query), json.loads(body) if body else None


async def test_create_derives_the_event_id_and_tags_the_user() -> None:
    calendar, http = _calendar(_ok("echo_request_body"))

    event = await calendar.create(
        None,  # type: ignore[arg-type]
        7,
        "Dentist",
        START,
        END,
        "High Street",
        "wf-1:turn-3:toolu_01",
    )

    method, path, _query, body = _request(http, 0)
    assert (method, path) == ("POST", EVENTS_PATH)
    expected_id = hashlib.sha256(b"wf-1:turn-3:toolu_01").hexdigest()
    assert body["id"] == expected_id == event_id_for("wf-1:turn-3:toolu_01")
    assert re.fullmatch(r"[a-v0-9]{5,1024}", body["id"])
    assert body["extendedProperties"] == {"private": {"convonet_user_id": "7"}}
    assert body["start"] == {"dateTime": "2030-05-01T10:00:00+02:00"}
    assert body["end"] == {"dateTime": "2030-05-01T11:00:00+02:00"}
    assert (body["summary"], body["location"]) == ("Dentist", "High Street")
    assert event.id == expected_id
    assert (event.starts_at, event.ends_at) == (START, END)
    assert event.starts_at.tzinfo is not None


async def test_retried_create_returns_the_event_the_first_attempt_made() -> None:
    event_id = event_id_for("wf-1:turn-3:toolu_01")
    calendar, http = _calendar(
        _error(409, "duplicate", "The requested identifier already exists."),
        _ok(_event(event_id, "7")),
    )

    event = await calendar.create(
        None,  # type: ignore[arg-type]
        7,
        "Dentist",
        START,
        END,
        "High Street",
        "wf-1:turn-3:toolu_01",
    )

    assert event.id == event_id
    assert event.title == "Dentist"
    method, path, _query, _body = _request(http, 1)
    assert (method, path) == ("GET", f"{EVENTS_PATH}/{event_id}")
    assert len(http.request_sequence) == 2


async def test_create_conflicting_with_another_users_event_fails() -> None:
    event_id = event_id_for("key")
    calendar, _http = _calendar(
        _error(409, "duplicate", "The requested identifier already exists."),
        _ok(_event(event_id, "8")),
    )

    with pytest.raises(CalendarError):
        await calendar.create(None, 7, "Dentist", START, END, "", "key")  # type: ignore[arg-type]


async def test_list_asks_only_for_the_users_events_across_pages() -> None:
    calendar, http = _calendar(
        _ok({"items": [_event("aaaaa1", "7", "Dentist")], "nextPageToken": "page-2"}),
        # A provider slip returning someone else's event must not reach the caller.
        _ok({"items": [_event("bbbbb2", "7", "Gym"), _event("ccccc3", "8", "Not yours")]}),
    )
    day_start = datetime(2030, 5, 1, tzinfo=UTC)

    events = await calendar.list(None, 7, day_start, day_start + timedelta(days=1))  # type: ignore[arg-type]

    assert [(e.id, e.title) for e in events] == [("aaaaa1", "Dentist"), ("bbbbb2", "Gym")]
    method, path, query, _body = _request(http, 0)
    assert (method, path) == ("GET", EVENTS_PATH)
    assert query["privateExtendedProperty"] == ["convonet_user_id=7"]
    assert query["singleEvents"] == ["true"]
    assert query["orderBy"] == ["startTime"]
    assert query["timeMin"] == ["2030-05-01T00:00:00+00:00"]
    assert query["timeMax"] == ["2030-05-02T00:00:00+00:00"]
    _method, _path, second_query, _body = _request(http, 1)
    assert second_query["pageToken"] == ["page-2"]
    assert second_query["privateExtendedProperty"] == ["convonet_user_id=7"]


async def test_update_and_delete_refuse_another_users_event() -> None:
    calendar, http = _calendar(_ok(_event("aaaaa1", "8")), _ok(_event("aaaaa1", "8")))

    updated = await calendar.update(None, 7, "aaaaa1", title="Mine now")  # type: ignore[arg-type]
    deleted = await calendar.delete(None, 7, "aaaaa1")  # type: ignore[arg-type]

    assert updated is None
    assert deleted is False
    # Only the two ownership checks went out: no PATCH, no DELETE.
    assert [request[1] for request in http.request_sequence] == ["GET", "GET"]


async def test_update_and_delete_the_users_own_event() -> None:
    moved = START + timedelta(days=1)
    calendar, http = _calendar(
        _ok(_event("aaaaa1", "7")),
        _ok(_event("aaaaa1", "7", "Dentist", start={"dateTime": "2030-05-02T10:00:00+02:00"})),
        _ok(_event("aaaaa1", "7")),
        _ok("", status=204),
    )

    updated = await calendar.update(None, 7, "aaaaa1", starts_at=moved)  # type: ignore[arg-type]
    deleted = await calendar.delete(None, 7, "aaaaa1")  # type: ignore[arg-type]

    assert updated is not None and updated.starts_at == moved
    method, path, _query, body = _request(http, 1)
    assert (method, path) == ("PATCH", f"{EVENTS_PATH}/aaaaa1")
    assert body == {"start": {"dateTime": "2030-05-02T10:00:00+02:00"}}
    assert deleted is True
    assert [request[1] for request in http.request_sequence[2:]] == ["GET", "DELETE"]


async def test_missing_or_cancelled_events_are_not_found() -> None:
    calendar, http = _calendar(
        _error(404, "notFound", "Not Found"),
        _ok(_event("aaaaa1", "7", status="cancelled")),
    )

    assert await calendar.update(None, 7, "zzzzz9", title="x") is None  # type: ignore[arg-type]
    assert await calendar.delete(None, 7, "aaaaa1") is False  # type: ignore[arg-type]
    assert len(http.request_sequence) == 2


async def test_api_error_becomes_a_speakable_calendar_error() -> None:
    calendar, http = _calendar(_error(403, "forbidden", "Forbidden"))

    with pytest.raises(CalendarError) as caught:
        await calendar.create(None, 7, "Dentist", START, END, "", "key")  # type: ignore[arg-type]

    assert "Google Calendar" in str(caught.value)
    assert "Forbidden" not in str(caught.value)
    assert len(http.request_sequence) == 1


def test_factory_builds_google_from_a_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token.json"
    token.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "client.apps.googleusercontent.com",
                "client_secret": "not-a-secret",
                "refresh_token": "not-a-token",
            }
        )
    )

    backend = calendar_backend(load_settings(google_calendar_token_file=token))

    assert isinstance(backend, GoogleCalendar)


def test_factory_reports_an_unreadable_credentials_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"

    with pytest.raises(ConfigError, match="Google Calendar credentials"):
        calendar_backend(load_settings(google_calendar_credentials_file=missing))
