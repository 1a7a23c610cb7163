"""`GET /metrics`: this edge process's metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import REGISTRY, generate_latest

# The classic text format, which every Prometheus version scrapes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    # Plain `def`: FastAPI runs it in a thread, so collecting never blocks the event loop.
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE)
