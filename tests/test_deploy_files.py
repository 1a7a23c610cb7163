"""docker-compose.yml, Dockerfile and .env.example agree with the code (Docker is not run here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from convonet.search_attributes import ALL
from convonet.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("api", "worker", "migrate")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose["services"]  # type: ignore[no-any-return]


def interpolate(value: str) -> str:
    """Compose-style `${VAR:-default}` -> default, `${VAR:?message}` / `${VAR}` -> "set"."""
    return re.sub(
        r"\$\{[A-Z0-9_]+(?::-([^}]*)|:\?[^}]*)?\}",
        lambda m: m.group(1) if m.group(1) is not None else "set",
        value,
    )


def published_ports(service: dict[str, Any]) -> set[int]:
    """Host ports of entries like "8000:8000" or "127.0.0.1:8233:8080"."""
    return {int(str(entry).split(":")[-2]) for entry in service.get("ports", [])}


def test_all_services_are_defined(services: dict[str, Any]) -> None:
    expected = {"postgresql", "temporal", "temporal-ui", "redis", "api", "worker", "migrate"}
    assert expected | {"temporal-setup"} <= set(services)


def test_ports(services: dict[str, Any]) -> None:
    assert 7233 in published_ports(services["temporal"])
    assert 8233 in published_ports(services["temporal-ui"])
    assert any(str(p).endswith(":8080") for p in services["temporal-ui"]["ports"])
    assert 6379 in published_ports(services["redis"])
    assert 8000 in published_ports(services["api"])


def test_infrastructure_images_and_wiring(services: dict[str, Any]) -> None:
    assert services["postgresql"]["image"].startswith("postgres:16")
    assert "healthcheck" in services["postgresql"]
    assert any("/var/lib/postgresql/data" in v for v in services["postgresql"]["volumes"])

    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    env = temporal["environment"]
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert {"DB_PORT", "POSTGRES_USER", "POSTGRES_PWD"} <= set(env)
    assert temporal["depends_on"]["postgresql"]["condition"] == "service_healthy"

    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert ui["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert services["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_environment(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["command"] == ["convonet", name]
    assert service["build"] == "."
    env = service["environment"]
    database = urlsplit(interpolate(env["DATABASE_URL"]))
    assert database.scheme == "postgresql+asyncpg"
    assert database.hostname == "postgresql"
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["CONVONET_ENV"] == "production"
    assert env["API_HOST"] == "0.0.0.0"
    # `${VAR:?message}`: compose refuses to start when the secret is unset or empty.
    assert re.fullmatch(r"\$\{PIN_PEPPER:\?[^}]*\}", env["PIN_PEPPER"])


def test_all_app_services_share_the_same_environment(services: dict[str, Any]) -> None:
    envs = [services[name]["environment"] for name in APP_SERVICES]
    assert envs[0] == envs[1] == envs[2]


def test_depends_on_conditions(services: dict[str, Any]) -> None:
    assert services["migrate"]["command"] == ["convonet", "migrate"]
    assert services["migrate"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["temporal-setup"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_temporal_setup_creates_every_search_attribute(services: dict[str, Any]) -> None:
    setup = services["temporal-setup"]
    assert setup["image"].startswith("temporalio/admin-tools:")
    assert "temporal" in setup["depends_on"]
    script = " ".join(str(part) for part in [*setup.get("entrypoint", []), *setup["command"]])
    for key in ALL:
        type_name = key.indexed_value_type.name.title()
        pattern = (
            r"temporal operator search-attribute create --address temporal:7233 .*"
            rf"--name {key.name} --type {type_name}\b"
        )
        assert re.search(pattern, script), f"{key.name} ({type_name}) is not registered"


def test_dockerfile_installs_the_lock_and_runs_unprivileged() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    text = "\n".join(lines)
    lock_at = text.index("pip install -r requirements.lock")
    project_at = text.index("pip install --no-deps .")
    assert lock_at < project_at
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert lines[-1] == 'CMD ["convonet", "api"]'
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".venv" in ignored


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    # `NAME=` at the start of a line, possibly commented out (an optional setting left unset).
    names = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    missing = [field.upper() for field in Settings.model_fields if field.upper() not in names]
    assert not missing, f"missing from .env.example: {missing}"


def test_env_example_values_parse_as_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Settings.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
    from_example = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example == defaults
