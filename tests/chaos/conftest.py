"""Fixtures and collection rules of the chaos suite (the harness is in harness.py).

Run with `make chaos`; plain `make test` (and any pytest run not naming tests/chaos) leaves
it out, since it takes minutes and starts its own servers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from convonet.seed import seed
from convonet.settings import Settings
from tests.chaos.harness import API_READY_S, Infrastructure, Stack
from tests.conftest import TEST_PEPPER
from tests.system import free_port

CHAOS_DIR = Path(__file__).resolve().parent
# Set to keep the processes' logs of a passing run too (a failing run always keeps them).
KEEP_LOGS = "CONVONET_CHAOS_KEEP_LOGS"
_FAILED = pytest.StashKey[bool]()


def _named(config: pytest.Config) -> bool:
    """True when the command line names tests/chaos (or something inside it)."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == CHAOS_DIR or CHAOS_DIR in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # A bare `pytest` (testpaths) must not start the chaos servers; `make chaos` names us.
    if CHAOS_DIR in collection_path.resolve().parents and not _named(config):
        return True
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    # The stack fixture prints the processes' last log lines when the case failed.
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


# The cases run in this order: the worker's kills, then the servers' restarts, then both.
ORDER = (
    "test_worker_kills.py",
    "test_redis_restart.py",
    "test_temporal_restart.py",
    "test_transfer_worker_restart.py",
    "test_dial_kill.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return ORDER.index(name) if name in ORDER else len(ORDER)

    items.sort(key=rank)  # stable: a file's cases keep their order


@pytest.fixture(autouse=True)
def _announce(request: pytest.FixtureRequest) -> None:
    """Heads each case's lines with its name and what it does (its docstring)."""
    doc = (request.function.__doc__ or "").strip().splitlines()
    print(f"\n[chaos] {request.node.name}: {doc[0] if doc else ''}", flush=True)


@pytest.fixture(scope="session")
def infrastructure(request: pytest.FixtureRequest) -> Iterator[Infrastructure]:
    # Its own directory, not pytest's tmp_path: other pytest runs on this machine rotate
    # those away, and the logs of a failed case must stay.
    root = Path(tempfile.mkdtemp(prefix="convonet-chaos-"))
    infra = Infrastructure(root)
    try:
        asyncio.run(infra.start())
        yield infra
    finally:
        asyncio.run(infra.close())
        if request.session.testsfailed or os.environ.get(KEEP_LOGS):
            print(f"\nchaos: the processes' logs are kept in {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest, infrastructure: Infrastructure, db_url: str
) -> AsyncIterator[Stack]:
    """The case's API process (started) and its workers (each case starts its own)."""
    case_dir = infrastructure.root / request.node.name
    case_dir.mkdir()
    api_port = free_port()
    settings = Settings(
        convonet_env="test",
        data_dir=case_dir,
        database_url=db_url,
        redis_url=infrastructure.redis_url,
        temporal_address=infrastructure.temporal_address,
        # Its own queue: conversations left over from an earlier case find no worker here.
        temporal_task_queue=f"chaos-{uuid.uuid4().hex[:8]}",
        pin_pepper=TEST_PEPPER,
        api_port=api_port,
        public_base_url=f"http://127.0.0.1:{api_port}",
    )
    redis = aioredis.from_url(infrastructure.redis_url)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()
    await seed(settings)
    stack = Stack(infrastructure, settings, case_dir / "logs")
    try:
        async with asyncio.timeout(API_READY_S):
            await stack.start_api()
        yield stack
    finally:
        await stack.close(failed=request.node.stash.get(_FAILED, False))
