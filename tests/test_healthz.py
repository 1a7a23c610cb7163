"""`/healthz` is 200 with every dependency up and 503 naming the one that is down."""

from __future__ import annotations

import httpx

from convonet.settings import Settings
from tests.system import free_port, run_api


async def test_healthz_ok_when_everything_is_up(settings: Settings) -> None:
    async with run_api(settings) as url, httpx.AsyncClient() as http:
        response = await http.get(f"{url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["redis"]["ok"] and body["temporal"]["ok"]


async def test_healthz_503_when_redis_is_down(settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with run_api(broken) as url, httpx.AsyncClient() as http:
        response = await http.get(f"{url}/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["redis"]["ok"] is False and body["database"]["ok"] and body["temporal"]["ok"]


async def test_healthz_503_when_temporal_is_down(settings: Settings) -> None:
    broken = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with run_api(broken) as url, httpx.AsyncClient() as http:
        response = await http.get(f"{url}/healthz")
    assert response.status_code == 503
    assert response.json()["temporal"]["ok"] is False
