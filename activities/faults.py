"""Fault injection for the durability tests and `make chaos`: holds one phase of a turn open
so a test can kill the worker inside it. Every hold is off (zero seconds) unless a FAULT_*
setting turns it on, and production refuses those settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from temporalio import activity

# The worker logs this when a hold starts: the test reads it to know the phase is open.
HOLD_MESSAGE = "fault injection: holding %s open for %.1f s"


async def hold_open(
    phase: str, seconds: float, details: Callable[[], object] | None = None
) -> None:
    """Waits `seconds` inside the running activity (at once when zero).

    With `details`, it heartbeats them every second meanwhile, so the server keeps the
    attempt on this worker for as long as the worker lives.
    """
    if seconds <= 0:
        return
    activity.logger.warning(HOLD_MESSAGE, phase, seconds)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        if details is not None:
            activity.heartbeat(details())
