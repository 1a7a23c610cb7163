"""What Deepgram's speech-to-text and text-to-speech adapters share: the SDK client, opening
its websockets, and telling a dropped connection (worth one reconnect) from a refusal.

Both adapters talk to Deepgram only through the official deepgram-sdk, whose environment can
point at a local stand-in (`DEEPGRAM_BASE_URL`) so tests exercise the real SDK end to end.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TypeVar

from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from deepgram.core.api_error import ApiError
from websockets.exceptions import ConnectionClosed, WebSocketException

from convonet.settings import Settings

T = TypeVar("T")

# Close codes that mean "the link or the server went away", not "your request is wrong":
# going away, abnormal closure (no close frame), internal error / timeouts (NET-0000,
# NET-0001), service restart, try again later, bad gateway.
_TRANSIENT_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})


def deepgram_client(settings: Settings) -> AsyncDeepgramClient:
    """The SDK client for Deepgram's servers, or for the stand-in at `deepgram_base_url`."""
    if not settings.deepgram_api_key:
        raise ValueError("the Deepgram engines need DEEPGRAM_API_KEY")
    environment = DeepgramClientEnvironment.PRODUCTION
    if settings.deepgram_base_url:
        base = settings.deepgram_base_url.rstrip("/")
        # http -> ws, https -> wss; a ws:// or wss:// URL is taken as it is.
        websocket = base if base.startswith("ws") else "ws" + base.removeprefix("http")
        environment = DeepgramClientEnvironment(
            base=base, production=websocket, agent=websocket, agent_rest=base
        )
    return AsyncDeepgramClient(api_key=settings.deepgram_api_key, environment=environment)


async def open_websocket(
    stack: AsyncExitStack,
    connect: AbstractAsyncContextManager[T],
    error: type[Exception],
) -> T:
    """Enters one SDK `connect(...)` on `stack`; failures become `error` with a safe message
    (never the request headers, which carry the key)."""
    try:
        return await stack.enter_async_context(connect)
    except ApiError as refused:
        if refused.status_code == 401:
            raise error("Deepgram refused the API key (HTTP 401)") from None
        raise error(f"Deepgram refused the connection (HTTP {refused.status_code})") from None
    except (OSError, TimeoutError, WebSocketException) as failed:
        raise error(f"cannot connect to Deepgram: {type(failed).__name__}: {failed}") from None


def connection_dropped(closed: ConnectionClosed) -> bool:
    """True when the connection was lost rather than closed because of our request."""
    return closed.rcvd is None or closed.rcvd.code in _TRANSIENT_CLOSE_CODES


def describe_close(closed: ConnectionClosed) -> str:
    if closed.rcvd is None:
        return "Deepgram connection lost"
    reason = f" {closed.rcvd.reason}" if closed.rcvd.reason else ""
    return f"Deepgram closed the connection ({closed.rcvd.code}{reason})"
