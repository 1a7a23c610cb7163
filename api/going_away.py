"""Telling connected pages that this API process is going away (SIGTERM, a deploy), so they
reconnect at once, to this address's next process or another one behind the same load
balancer, and resume their conversation, instead of finding out from a dropped socket and
backing off."""

from __future__ import annotations

import asyncio
import logging
import socket

import socketio
import uvicorn
from pydantic import BaseModel

from api.agent.protocol import AGENT_NAMESPACE
from api.protocol import NAMESPACE as CALLER_NAMESPACE

log = logging.getLogger("convonet.api")

# Pages spread their reconnects over this long, so a restart is not met by every page at
# the same instant.
RECONNECT_SPREAD_MS = 1000
# Time for the notice to leave before the connections are closed.
DELIVERY_S = 0.3


class GoingAway(BaseModel):
    """`going_away` (server -> page, both namespaces): reconnect within this many ms, at a
    random moment; the session resumes as after any reconnect."""

    reconnect_within_ms: int


async def announce(sio: socketio.AsyncServer) -> None:
    notice = GoingAway(reconnect_within_ms=RECONNECT_SPREAD_MS).model_dump()
    for namespace in (CALLER_NAMESPACE, AGENT_NAMESPACE):
        await sio.emit("going_away", notice, namespace=namespace)
    await asyncio.sleep(DELIVERY_S)


class AnnouncingServer(uvicorn.Server):
    """Uvicorn's server, which first tells the pages to reconnect when asked to stop."""

    def __init__(self, config: uvicorn.Config, sio: socketio.AsyncServer) -> None:
        super().__init__(config)
        self.sio = sio

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await announce(self.sio)
        except Exception as error:  # the shutdown must go on regardless
            log.warning("could not tell the pages to reconnect: %s", error)
        await super().shutdown(sockets)
