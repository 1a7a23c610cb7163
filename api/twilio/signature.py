"""Checks that a request really comes from Twilio: `X-Twilio-Signature` over the public URL
and the form parameters, keyed with our auth token."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from twilio.request_validator import RequestValidator

from convonet.settings import Settings


def public_url(settings: Settings, connection: HTTPConnection) -> str:
    """The URL Twilio called: our public base URL (behind any proxy) plus path and query."""
    url = settings.public_base_url.rstrip("/") + connection.url.path
    if connection.url.query:
        url += "?" + connection.url.query
    return url


def is_from_twilio(settings: Settings, connection: HTTPConnection, params: dict[str, str]) -> bool:
    token = settings.twilio_auth_token
    signature = connection.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    return bool(
        RequestValidator(token).validate(public_url(settings, connection), params, signature)
    )
