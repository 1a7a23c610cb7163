"""`convonet dev` supervisor: port checks, real Temporal + Redis start/stop, supervision."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from convonet import dev_supervisor as ds
from convonet.settings import Settings

# Keep these tests off the PostgreSQL/Redis fixtures: they need neither.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """Is pid a live (non-zombie) process? Zombies are dead; only their parent may reap them."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def wait_until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def dev_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "convonet_env": "test",
        "data_dir": tmp_path,
        "temporal_address": f"127.0.0.1:{free_port()}",
        "temporal_ui_port": free_port(),
        "embedded_redis_port": free_port(),
        "redis_url": None,
        "api_host": "127.0.0.1",
        "api_port": free_port(),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def python_child(name: str, code: str, **kwargs: object) -> ds.ManagedProcess:
    return ds.ManagedProcess(name, [sys.executable, "-c", code], **kwargs)  # type: ignore[arg-type]


def test_port_in_use_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[str] = []
    monkeypatch.setattr(ds.ManagedProcess, "start", lambda self, _: started.append(self.name))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = dev_settings(tmp_path, api_port=port)

        assert ds.run_dev(settings) != 0

    out = capsys.readouterr().out
    assert f"port {port} (API) is already in use" in out
    assert "API_PORT" in out
    assert started == []


def test_busy_temporal_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        message = ds.busy_port_message(dev_settings(tmp_path, temporal_address=f"localhost:{port}"))
    assert message is not None and f"port {port} (Temporal)" in message


def test_remote_services_are_not_started(tmp_path: Path) -> None:
    settings = dev_settings(
        tmp_path, temporal_address="temporal.example:7233", redis_url="redis://cache:6379/0"
    )
    assert [p.name for p in ds.dev_processes(settings)] == ["worker", "api"]
    assert [need.label for need in ds.planned_ports(settings)] == ["API"]


def test_temporal_and_redis_start_answer_and_stop_cleanly(tmp_path: Path) -> None:
    settings = dev_settings(tmp_path)
    processes = [ds.temporal_process(settings), ds.redis_process(settings)]
    try:
        for process in processes:
            process.start(tmp_path / "logs")
            assert wait_until(process.ready, 15), f"{process.name} did not answer"
        assert ds.temporal_answers(settings.temporal_address, settings.temporal_namespace)
        assert ds.redis_answers(settings.embedded_redis_port)
    finally:
        for process in reversed(processes):
            process.stop()

    for process in processes:
        assert process.pid is not None
        assert not alive(process.pid), f"{process.name} still running"
        assert not group_alive(process.pid), f"{process.name} left processes behind"
    assert not ds.redis_answers(settings.embedded_redis_port)
    _, temporal_port = ds.split_address(settings.temporal_address)
    assert not ds.port_in_use("127.0.0.1", temporal_port)
    assert (tmp_path / "temporal.db").exists()
    assert (tmp_path / "logs" / "temporal.log").stat().st_size > 0


def test_unexpected_exit_stops_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sleeper = python_child("sleeper", "import time; time.sleep(60)")
    crasher = python_child("crasher", "import time, sys; time.sleep(0.5); sys.exit(3)")

    code = ds.supervise([sleeper, crasher], tmp_path, threading.Event())

    assert code != 0
    assert "crasher exited unexpectedly with code 3" in capsys.readouterr().out
    assert sleeper.pid is not None and not alive(sleeper.pid)


def test_child_output_is_prefixed_and_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    talker = python_child("talker", "print('hello', flush=True); import time; time.sleep(60)")
    talker.console = True
    stop = threading.Event()
    talker.ready = lambda: (tmp_path / "talker.log").read_bytes().startswith(b"hello")

    assert ds.supervise([talker], tmp_path, stop, on_ready=stop.set) == 0
    assert "talker  | hello" in capsys.readouterr().out


def test_sigterm_stops_children_in_reverse_order_and_leaves_nothing(tmp_path: Path) -> None:
    stopped: list[str] = []

    class Recording(ds.ManagedProcess):
        def stop(self, grace_s: float = 5.0) -> None:
            stopped.append(self.name)
            super().stop(grace_s=1.0)

    # The grandchild ignores SIGTERM: only the process-group SIGKILL sweep can end it.
    marker = tmp_path / "grandchild-started"
    grandchild = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
    )
    spawner = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}, {str(marker)!r}]); "
        "time.sleep(60)"
    )
    first = Recording("first", [sys.executable, "-c", spawner], ready=marker.exists)
    second = Recording("second", [sys.executable, "-c", "import time; time.sleep(60)"])
    # SIGTERM rather than SIGINT: the test runner's asyncio loop reacts to SIGINT itself.
    previous_handler = signal.getsignal(signal.SIGTERM)

    def interrupt() -> None:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()

    code = ds.run_with_signals([first, second], tmp_path, on_ready=interrupt)

    assert code == 0
    assert stopped == ["second", "first"]
    for process in (first, second):
        pgid = process.pid
        assert pgid is not None
        assert wait_until(lambda: not group_alive(pgid), 3), f"{process.name} left processes"  # noqa: B023
    assert signal.getsignal(signal.SIGTERM) is previous_handler
