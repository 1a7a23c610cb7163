"""The product's own processes (`convonet api`, `convonet worker`) started as the
deployment starts them, against the test's PostgreSQL, Redis and Temporal, each logging to
a file: for tests about what only a real process does (signals, logs, restarts)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from convonet.settings import Settings

START_TIMEOUT_S = 30


def process_env(settings: Settings, api_port: int, log_level: str = "INFO") -> dict[str, str]:
    return {
        **os.environ,
        "CONVONET_ENV": "test",
        "DATABASE_URL": settings.effective_database_url,
        "REDIS_URL": settings.effective_redis_url,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "PIN_PEPPER": settings.pin_pepper,
        "API_PORT": str(api_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
        "DATA_DIR": str(settings.data_dir),
        "WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": log_level,
    }


def start(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`convonet <role>` in its own process group, appending to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "convonet.cli", role],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait_s: float = 20) -> int:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    return process.wait(timeout=wait_s)


async def until_healthy(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(START_TIMEOUT_S * 10):
            try:
                if (await http.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not come up")
