"""The Socket.IO server: python-socketio's, answering a packet it cannot read.

python-socketio raises on a packet that is not JSON, is not a list or names no event, before
any namespace sees it, and Engine.IO logs that with a traceback. Here the client is told
instead, on each namespace it is connected to, and the server logs one line."""

from __future__ import annotations

import logging
from typing import Any

import socketio

from api.protocol import ErrorOut

log = logging.getLogger("convonet.api.socket")

UNREADABLE = ErrorOut(code="bad_request", message="That message could not be read.")


class SocketServer(socketio.AsyncServer):
    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError) as error:
            # What python-socketio raises while reading a packet; our handlers catch their own.
            log.info("unreadable Socket.IO packet: %s", type(error).__name__)
            for namespace in self.manager.get_namespaces():
                sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
                if sid is not None:
                    await self.emit("error", UNREADABLE.model_dump(), to=sid, namespace=namespace)
