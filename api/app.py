"""The ASGI application: FastAPI for REST and pages, python-socketio for live events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import socketio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.caller_socket import CallerNamespace
from api.health import router as health_router
from api.services import EdgeServices
from convonet.settings import Settings

# Beside the package in a checkout; in the working directory when installed (the image).
WEB_DIR = next(
    (
        path
        for path in (Path(__file__).resolve().parent.parent / "web", Path.cwd() / "web")
        if path.is_dir()
    ),
    None,
)


def create_app(settings: Settings) -> socketio.ASGIApp:
    services = EdgeServices(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await services.close()

    api = FastAPI(title="Convonet", version="0.1.0", lifespan=lifespan)
    api.state.services = services
    api.include_router(health_router)
    if WEB_DIR is not None:
        api.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")

    # The pages are served from PUBLIC_BASE_URL, so that origin is always allowed.
    origins = sorted({*settings.cors_origins, settings.public_base_url.rstrip("/")})
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=origins, logger=False)
    sio.register_namespace(CallerNamespace(services))
    return socketio.ASGIApp(sio, other_asgi_app=api)
