"""Picks the calendar backend: Google when credentials are set, else the local tables."""

from __future__ import annotations

from convonet.engines.calendar.base import CalendarBackend
from convonet.settings import Settings


def calendar_backend(settings: Settings) -> CalendarBackend:
    # Backends are imported on demand so only the chosen one's dependencies load.
    if settings.google_calendar_credentials_file or settings.google_calendar_token_file:
        from convonet.engines.calendar.google import GoogleCalendar

        return GoogleCalendar.from_settings(settings)
    from convonet.engines.calendar.local import LocalCalendar

    return LocalCalendar()
