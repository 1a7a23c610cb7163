"""`GET /healthz`: the state of every dependency; 503 when any is down."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.services import EdgeServices
from convonet.db.session import get_engine

router = APIRouter()
CHECK_TIMEOUT_S = 3


class DependencyHealth(BaseModel):
    ok: bool
    detail: str = ""


class Health(BaseModel):
    status: str
    database: DependencyHealth
    redis: DependencyHealth
    temporal: DependencyHealth


async def _check(probe: object) -> DependencyHealth:
    try:
        await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_S)  # type: ignore[arg-type]
    except Exception as error:  # any failure is reported, never raised
        return DependencyHealth(ok=False, detail=type(error).__name__)
    return DependencyHealth(ok=True)


async def _database(url: str) -> None:
    async with get_engine(url).connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _temporal(services: EdgeServices) -> None:
    client = await services.temporal()
    await client.service_client.check_health()


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is down."}},
)
async def healthz(request: Request) -> JSONResponse:
    services: EdgeServices = request.app.state.services
    database, redis, temporal = await asyncio.gather(
        _check(_database(services.settings.effective_database_url)),
        _check(services.redis.ping()),
        _check(_temporal(services)),
    )
    ok = database.ok and redis.ok and temporal.ok
    body = Health(
        status="ok" if ok else "degraded", database=database, redis=redis, temporal=temporal
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
