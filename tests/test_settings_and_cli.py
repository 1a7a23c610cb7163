"""Settings errors name the setting in one line; seed is idempotent and refused in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from convonet.db.models import Agent, Department, Team, TeamMembership, User
from convonet.db.session import session_scope
from convonet.security import pin_hash
from convonet.seed import DEMO_USERS, seed
from convonet.settings import Settings


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k.upper() != "PIN_PEPPER"}
    return subprocess.run(
        [sys.executable, "-m", "convonet.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_default_secrets(tmp_path: Path) -> None:
    result = _cli("migrate", env={"CONVONET_ENV": "production"}, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PIN_PEPPER" in lines[0]


def test_wrong_setting_is_named_in_one_line(tmp_path: Path) -> None:
    result = _cli("migrate", env={"API_PORT": "eighty"}, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: API_PORT")


def test_seed_refuses_production(tmp_path: Path) -> None:
    result = _cli(
        "seed",
        env={"CONVONET_ENV": "production", "PIN_PEPPER": "p" * 32},
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "refuses to run in production" in result.stderr


def test_migrate_and_seed_json_on_sqlite(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path / "var")}
    assert _cli("migrate", env=env, cwd=tmp_path).returncode == 0
    result = _cli("seed", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    demo = json.loads(result.stdout)
    assert {u["pin"] for u in demo["users"]} == {u.pin for u in DEMO_USERS}
    assert demo["agents"][0]["extension"] == "2001" and demo["agents"][0]["login"]
    assert (tmp_path / "var" / "convonet.db").exists()


async def test_seed_is_idempotent_and_stores_only_pin_hashes(settings: Settings) -> None:
    await seed(settings)
    await seed(settings)
    async with session_scope(settings.effective_database_url) as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (User, Team, TeamMembership, Agent, Department)
        ]
        users = (await session.scalars(select(User))).all()
    assert counts == [3, 1, 3, 1, 4]
    for user in users:
        demo = next(d for d in DEMO_USERS if d.email == user.email)
        assert user.pin_hash == pin_hash(demo.pin, settings.pin_pepper)
        assert demo.pin not in user.pin_hash
