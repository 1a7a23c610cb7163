"""Security headers on every HTTP response: a Content-Security-Policy that lets the pages
run only our own scripts, styles and connections, and the usual browser hardening.

The pages load ES modules and audio worklets from our origin and talk to our Socket.IO
endpoint; in PBX mode the dashboard's JsSIP also opens the FusionPBX WebSocket, so that one
origin is allowed too. Nothing inline is allowed: injected markup can never run script.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convonet.settings import Settings


def _websocket_origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    port = f":{parts.port}" if parts.port else ""
    return f"{scheme}://{parts.hostname}{port}"


def content_security_policy(settings: Settings) -> str:
    connect = ["'self'"]
    # Older browsers do not count ws(s) of our own host as 'self'.
    own = _websocket_origin(settings.public_base_url)
    if own:
        connect.append(own)
    if settings.fusionpbx_wss_url:
        pbx = _websocket_origin(settings.fusionpbx_wss_url)
        if pbx:
            connect.append(pbx)
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": " ".join(connect),
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    values = {
        "content-security-policy": content_security_policy(settings),
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        # The voice app and the softphone need the microphone; nothing else does.
        "permissions-policy": "microphone=(self), camera=(), geolocation=()",
        "cross-origin-opener-policy": "same-origin",
    }
    if settings.public_base_url.startswith("https://"):
        values["strict-transport-security"] = "max-age=31536000"
    return [(name.encode(), value.encode()) for name, value in values.items()]


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP response it passes on."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = security_headers(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.headers if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
