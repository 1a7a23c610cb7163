"""A real SIP server and a real SIP caller for the softphone tests.

`kamailio()` runs Kamailio on loopback as the stand-in for FusionPBX: SIP over UDP for the
caller (SIPp) and SIP over WebSocket for the browser (JsSIP). `run_sipp()` places one call
with a scenario file and reports what went over the wire. Both are real binaries from Debian
(apt-get install kamailio kamailio-websocket-modules sip-tester); a missing one fails the
test with the install line rather than skipping, so CI can't go green without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CONFIG_TEMPLATE = HERE / "kamailio.cfg"
INVITE_SCENARIO = HERE / "invite.xml"
KAMAILIO_APT = "apt-get install kamailio kamailio-websocket-modules"
SIPP_APT = "apt-get install sip-tester"
# Debian's multiarch layout first; the others cover other builds of the same packages.
MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def _binary(name: str, install: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        pytest.fail(f"`{name}` is needed for the SIP tests: {install}", pytrace=False)
    return path


def _module_dir() -> Path:
    for candidate in MODULE_DIRS:
        directory = Path(candidate)
        if (directory / "websocket.so").exists():
            return directory
    pytest.fail(
        "Kamailio's websocket module (websocket.so) was not found in "
        f"{', '.join(MODULE_DIRS)}: {KAMAILIO_APT}",
        pytrace=False,
    )


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _free_port_pair() -> tuple[int, int]:
    """A UDP port for SIP and a different TCP port for the WebSocket, both free right now."""
    sip_port = _free_port(socket.SOCK_DGRAM)
    while True:
        ws_port = _free_port(socket.SOCK_STREAM)
        if ws_port != sip_port:
            return sip_port, ws_port


def render_config(sip_port: int, ws_port: int, module_dir: Path) -> str:
    """The Kamailio config with its placeholders filled; a leftover placeholder is a bug."""
    text = (
        CONFIG_TEMPLATE.read_text()
        .replace("@@SIP_PORT@@", str(sip_port))
        .replace("@@WS_PORT@@", str(ws_port))
        .replace("@@MODULE_PATH@@", f"{module_dir}/")
    )
    leftover = re.search(r"@@\w+@@", text)
    if leftover:
        raise AssertionError(f"unfilled placeholder {leftover.group()} in {CONFIG_TEMPLATE}")
    return text


@dataclass(frozen=True)
class KamailioServer:
    sip_port: int
    ws_port: int
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def sip_target(self) -> str:
        """Where a UDP SIP client (SIPp) sends its requests."""
        return f"127.0.0.1:{self.sip_port}"

    @property
    def domain(self) -> str:
        """The SIP domain of the users (the host part of their AORs)."""
        return "127.0.0.1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def _options_probe(port: int, timeout: float) -> bool:
    """True when Kamailio answers an OPTIONS to itself on its UDP port (routing is up)."""
    call_id = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        local_port = udp.getsockname()[1]
        udp.settimeout(timeout)
        request = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{call_id[:16]};rport\r\n"
            f"From: <sip:probe@127.0.0.1>;tag={call_id[:8]}\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 5\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        udp.sendto(request.encode(), ("127.0.0.1", port))
        try:
            data = udp.recv(4096)
        except OSError:  # timeout or ICMP port unreachable: not listening yet
            return False
        return data.startswith(b"SIP/2.0 200") and call_id.encode() in data


def _tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    # Kamailio forks its workers into the process group we created for it (start_new_session):
    # signalling the group by its id reaches all of them and nothing else.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        _signal_group(process, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            _signal_group(process, signal.SIGKILL)
            await process.wait()
    # The main process may be gone while a worker lingers: sweep the group once more.
    _signal_group(process, signal.SIGKILL)


@contextlib.asynccontextmanager
async def kamailio(tmp_path: Path) -> AsyncIterator[KamailioServer]:
    """Kamailio on free loopback ports, in the foreground, as the current user.

    Its config, log and runtime dir (-Y: ctl sockets, pid files) all live under tmp_path,
    so nothing is written to /var/run or /etc and parallel runs don't collide.
    """
    binary = _binary("kamailio", KAMAILIO_APT)
    module_dir = _module_dir()
    workdir = tmp_path / "kamailio"
    runtime = workdir / "run"
    runtime.mkdir(parents=True, exist_ok=True)

    # A port picked free can be taken before Kamailio binds it; then it exits at once and
    # another pair is tried.
    last_error = ""
    for attempt in range(3):
        sip_port, ws_port = _free_port_pair()
        config = workdir / "kamailio.cfg"
        config.write_text(render_config(sip_port, ws_port, module_dir))
        log_path = workdir / f"kamailio{attempt}.log"
        server = KamailioServer(sip_port, ws_port, log_path)
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                binary,
                "-DD",  # foreground, but still forks its UDP/TCP workers
                "-E",  # log to stderr (here: the log file)
                "-f",
                str(config),
                "-m",
                "64",  # MB of shared memory: plenty for two phones
                "-M",
                "8",  # MB of private memory per process
                "-Y",
                str(runtime),
                "-w",
                str(workdir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            ready = await _wait_ready(process, server)
            if not ready:
                last_error = server.log_tail()
                continue
            yield server
            return
        finally:
            await _stop(process)
    pytest.fail(f"Kamailio did not start (3 tries). Last log:\n{last_error}", pytrace=False)


async def _wait_ready(process: asyncio.subprocess.Process, server: KamailioServer) -> bool:
    """True once both listeners answer; False if Kamailio exited (e.g. a port was taken)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline:
        if process.returncode is not None:
            return False
        tcp_ok = await asyncio.to_thread(_tcp_accepts, server.ws_port)
        if tcp_ok and await asyncio.to_thread(_options_probe, server.sip_port, 0.3):
            return True
        await asyncio.sleep(0.1)
    if process.returncode is not None:
        return False
    pytest.fail(
        f"Kamailio did not answer on 127.0.0.1:{server.sip_port} (udp) and "
        f"{server.ws_port} (ws) within {START_TIMEOUT:.0f} s. Log:\n{server.log_tail()}",
        pytrace=False,
    )


_STATUS_LINE = re.compile(r"^SIP/2\.0 (\d{3}) ", re.MULTILINE)
_CSEQ_LINE = re.compile(r"^CSeq:\s*\d+\s+(\w+)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class SippResult:
    returncode: int
    output: str  # SIPp's stdout and stderr (its final statistics screen)
    messages: str  # every SIP message sent and received (-trace_msg)
    errors: str  # unexpected messages (-trace_err)

    def received_statuses(self, method: str = "INVITE") -> list[int]:
        """Status codes SIPp received for `method` requests, in order (provisional too)."""
        codes: list[int] = []
        for block in self.messages.split("\n\n"):
            status = _STATUS_LINE.search(block)
            cseq = _CSEQ_LINE.search(block)
            if status and cseq and cseq.group(1).upper() == method.upper():
                codes.append(int(status.group(1)))
        return codes

    def final_status(self, method: str = "INVITE") -> int | None:
        finals = [code for code in self.received_statuses(method) if code >= 200]
        return finals[0] if finals else None

    def explain(self) -> str:
        return (
            f"sipp exited {self.returncode}\n--- output ---\n{self.output[-3000:]}\n"
            f"--- errors ---\n{self.errors[-3000:]}\n--- messages ---\n{self.messages[-6000:]}"
        )


async def run_sipp(
    target: str,
    keys: Mapping[str, str],
    workdir: Path,
    *,
    scenario: Path = INVITE_SCENARIO,
    timeout: float = 20.0,
) -> SippResult:
    """One call (-m 1) from SIPp over UDP, headless, bounded by `timeout` seconds.

    `keys` fill the scenario's [keyword] fields (sipp -key). Cancelling the awaiting task
    kills SIPp, so a failing test leaves no caller behind.
    """
    binary = _binary("sipp", SIPP_APT)
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    messages = workdir / f"sipp-{run_id}-messages.log"
    errors = workdir / f"sipp-{run_id}-errors.log"
    screen = workdir / f"sipp-{run_id}-screen.log"
    args = [
        target,
        "-sf",
        str(scenario),
        "-m",
        "1",  # exactly one call, then exit with its verdict
        "-t",
        "u1",  # UDP, one socket
        "-i",
        "127.0.0.1",
        "-p",
        str(_free_port(socket.SOCK_DGRAM)),
        "-nostdin",  # no interactive keys: we run without a terminal
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",  # hitting the global timeout is a failure, not a pass
        "-max_retrans",
        "5",
        "-trace_msg",
        "-message_file",
        str(messages),
        "-trace_err",
        "-error_file",
        str(errors),
        "-trace_screen",
        "-screen_file",
        str(screen),
    ]
    for name, value in keys.items():
        args += ["-key", name, value]
    process = await asyncio.create_subprocess_exec(
        binary,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,
        # SIPp sets the terminal to raw mode when it has one; a session of its own keeps
        # it off the test runner's terminal.
        start_new_session=True,
        env={**os.environ, "TERM": "dumb"},
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout + 5)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def read(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    output = stdout.decode(errors="replace") + read(screen)
    returncode = process.returncode if process.returncode is not None else -1
    return SippResult(returncode, output, read(messages), read(errors))
