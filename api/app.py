"""The ASGI application: FastAPI for REST, pages and Twilio's webhooks, python-socketio for
the caller's and the agent's live events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import socketio
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.agent.routes import router as agent_router
from api.agent.socket import AgentNamespace
from api.caller_socket import CallerNamespace
from api.events_hub import EventHub
from api.health import router as health_router
from api.metrics import router as metrics_router
from api.security_headers import SecurityHeaders
from api.services import EdgeServices
from api.socket_server import SocketServer
from api.twilio.routes import router as twilio_router
from convonet.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _first_dir(*candidates: Path) -> Path | None:
    # Beside the package in a checkout; in the working directory when installed (the image).
    return next((path for path in candidates if path.is_dir()), None)


WEB_DIR = _first_dir(ROOT / "web", Path.cwd() / "web")
NODE_MODULES = _first_dir(ROOT / "node_modules", Path.cwd() / "node_modules")
# Third-party browser code comes from npm (package.json pins it) and is served from here.
VENDOR_FILES = {"jssip.min.js": ("jssip", "dist", "jssip.min.js")}


def create_app(settings: Settings) -> socketio.ASGIApp:
    services = EdgeServices(settings)
    hub = EventHub(services.redis)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        hub.start()
        yield
        await hub.aclose()
        await services.close()

    api = FastAPI(title="Convonet", version="0.1.0", lifespan=lifespan)
    api.state.services = services
    api.add_middleware(SecurityHeaders, settings=settings)
    api.include_router(health_router)
    api.include_router(metrics_router)
    api.include_router(agent_router)
    api.include_router(twilio_router)

    @api.get("/vendor/{name}", include_in_schema=False)
    async def vendor(name: str) -> FileResponse:
        parts = VENDOR_FILES.get(name)
        if parts is None or NODE_MODULES is None:
            raise HTTPException(status_code=404, detail="Not found.")
        path = NODE_MODULES.joinpath(*parts)
        if not path.is_file():
            raise HTTPException(
                status_code=404, detail="Run `make install` to fetch the web dependencies."
            )
        return FileResponse(path, media_type="text/javascript")

    if WEB_DIR is not None:
        api.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")

    # The pages are served from PUBLIC_BASE_URL, so that origin is always allowed.
    origins = sorted({*settings.cors_origins, settings.public_base_url.rstrip("/")})
    sio = SocketServer(async_mode="asgi", cors_allowed_origins=origins, logger=False)
    sio.register_namespace(CallerNamespace(services, hub))
    sio.register_namespace(AgentNamespace(services, hub))
    return socketio.ASGIApp(sio, other_asgi_app=api)
