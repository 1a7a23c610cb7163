"""The `convonet` command: run the product's processes and talk to a running system."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from convonet.log_filters import NoWireFrames
from convonet.settings import ConfigError, Settings, load_settings


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from convonet.db.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(settings.effective_database_url)
    print(f"database migrated: {_redacted(settings.effective_database_url)}")
    return 0


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    from convonet.seed import SeedRefused, seed

    try:
        demo = asyncio.run(seed(settings))
    except SeedRefused as error:
        print(f"seed refused: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(demo))
    else:
        print("demo data ready:")
        for user in demo["users"]:
            print(f"  caller {user['name']:<14} PIN {user['pin']}")
        for agent in demo["agents"]:
            print(
                f"  agent  {agent['name']:<14} login {agent['login']} / {agent['password']}"
                f" (extension {agent['extension']})"
            )
    return 0


def _api(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.going_away import AnnouncingServer
    from convonet.log_filters import uvicorn_log_config

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(),
        timeout_graceful_shutdown=5,
    )
    AnnouncingServer(config, app.engineio_server).run()
    _exit_past_finalization(0)


def _worker(settings: Settings, _args: argparse.Namespace) -> int:
    from worker import run_worker

    asyncio.run(run_worker(settings))
    _exit_past_finalization(0)


def _exit_past_finalization(code: int) -> NoReturn:
    """Ends a process that held a Temporal client once its work is done and flushed.

    The SDK's native threads can call into Python while the interpreter finalizes, which
    aborts a process that had shut down cleanly (SIGABRT, "PyGILState_Release: thread state
    must be current", temporalio/sdk-python#300), so finalization is skipped."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _dev(settings: Settings, _args: argparse.Namespace) -> int:
    from convonet.dev_supervisor import run_dev
    from convonet.seed import DEMO_AGENTS, DEMO_USERS

    def print_demo_credentials() -> None:
        if settings.is_production:
            return
        print("demo callers: " + ", ".join(f"{u.name} PIN {u.pin}" for u in DEMO_USERS))
        print("demo agents:  " + ", ".join(f"{a.login} / {a.password}" for a in DEMO_AGENTS))

    return run_dev(settings, on_ready=print_demo_credentials)


def _call(settings: Settings, args: argparse.Namespace) -> int:
    from convonet.call_client import run_call

    url = args.url or f"http://{settings.api_host}:{settings.api_port}"
    return asyncio.run(run_call(url, args.pin, args.turns, as_json=args.json))


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from convonet.replay import replay_recent

    return asyncio.run(replay_recent(settings, args.latest))


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    from convonet.bench.cli import run

    return run(list(args.bench_args), settings)


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convonet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[str, Callable[[Settings, argparse.Namespace], int]]] = {
        "dev": ("start Temporal, Redis, the worker and the API together", _dev),
        "api": ("run the API and Socket.IO edge", _api),
        "worker": ("run the Temporal worker", _worker),
        "migrate": ("upgrade the database to the latest schema", _migrate),
        "seed": ("create the demo users, team, agent and departments", _seed),
        "call": ("talk to a running system through the caller socket", _call),
        "replay": ("replay recent conversation histories against this code", _replay),
        "bench": ("measure a running system (convonet bench --help)", _bench),
    }
    for name, (help_text, handler) in commands.items():
        # `bench` hands all its arguments to its own (typer) app, options included.
        command = sub.add_parser(name, help=help_text, add_help=name != "bench")
        command.set_defaults(handler=handler)
        if name == "bench":
            command.add_argument("bench_args", nargs=argparse.REMAINDER)
        if name == "seed":
            command.add_argument("--json", action="store_true", help="print credentials as JSON")
        if name == "call":
            command.add_argument("--pin", required=True)
            command.add_argument(
                "--say",
                dest="turns",
                action="append",
                default=[],
                type=lambda text: ("say", text),
                help="text of one turn",
            )
            command.add_argument(
                "--audio",
                dest="turns",
                action="append",
                type=lambda path: ("audio", path),
                help="a WAV file spoken as one turn (streamed in real time, like a microphone)",
            )
            command.add_argument("--json", action="store_true", help="one JSON line per turn")
            command.add_argument("--url", help="API base URL (default from settings)")
        if name == "replay":
            command.add_argument("--latest", type=int, default=20, help="how many histories")
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["bench"]:
        # argparse would take the bench's own options (--help, --json) for convonet's.
        return argparse.Namespace(handler=_bench, bench_args=argv[1:])
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for root_handler in logging.getLogger().handlers:
        root_handler.addFilter(NoWireFrames())
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
