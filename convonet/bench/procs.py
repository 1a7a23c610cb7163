"""Finding the system's processes (API, worker, Temporal, Redis) and sampling their CPU and
memory while a bench runs: with psutil when it is installed, else straight from /proc.

A process is recognized first by the port it listens on (the API's, Temporal's, Redis's,
the worker's metrics port), then by its command line. One process may hold several roles
(in tests the API and the worker share the test's process).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from convonet.settings import Settings

ROLES = ("api", "worker", "temporal", "redis")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", ""})
MB = 1024 * 1024

try:  # psutil is a dependency, but the bench still works without it
    import psutil
except ImportError:  # pragma: no cover - exercised only where psutil is missing
    psutil = None  # type: ignore[assignment]


@dataclass
class Target:
    pid: int
    roles: list[str]
    name: str
    cmdline: str
    # Helper processes it started (multiprocessing children, such as the worker's speech
    # decoders), counted in its CPU and memory: the most seen at once.
    helpers: int = 0


def raise_fd_limit() -> tuple[int, int]:
    """Raises this process's open-file soft limit to its hard limit; (soft, hard) after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft, hard


def open_file_limit(pid: int) -> int | None:
    """Another process's open-file soft limit (from /proc), None when unknown."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                value = line.split()[3]
                return None if value == "unlimited" else int(value)
    except (OSError, ValueError, IndexError):
        return None
    return None


def role_ports(settings: Settings, url: str) -> dict[int, str]:
    """The loopback ports that identify each role."""
    ports: dict[int, str] = {}
    api = urlparse(url)
    if api.hostname in LOOPBACK or api.hostname is None:
        ports[api.port or (443 if api.scheme == "https" else 80)] = "api"
    host, _, port = settings.temporal_address.rpartition(":")
    if host.strip("[]") in LOOPBACK and port.isdigit():
        ports[int(port)] = "temporal"
    redis = urlparse(settings.effective_redis_url)
    if redis.hostname in LOOPBACK:
        ports[redis.port or 6379] = "redis"
    if settings.worker_metrics_port and settings.worker_metrics_host in LOOPBACK:
        ports[settings.worker_metrics_port] = "worker"
    return ports


def _matches_cmdline(role: str, argv: Sequence[str], ports: dict[int, str]) -> bool:
    words = [os.path.basename(a) for a in argv]
    joined = " ".join(argv)
    convonet = any(w in ("convonet", "convonet.cli") for w in words) or "convonet.cli" in joined
    if role in ("api", "worker"):
        return convonet and role in words
    port = next((p for p, r in ports.items() if r == role), None)
    if port is None or not words:
        return False
    if role == "temporal":
        return words[0].startswith("temporal") and "start-dev" in words and str(port) in argv
    if role == "redis":
        return words[0].startswith("redis-server") and (str(port) in argv or f":{port}" in joined)
    return False


def find_processes(settings: Settings, url: str) -> list[Target]:
    """Our processes, each with its roles; roles not found are simply absent."""
    ports = role_ports(settings, url)
    listeners = _listeners(set(ports)) if ports else {}
    found: dict[int, Target] = {}
    for port, pid in listeners.items():
        target = found.get(pid) or _target(pid)
        if target is None:
            continue
        found[pid] = target
        if ports[port] not in target.roles:
            target.roles.append(ports[port])
    have = {role for t in found.values() for role in t.roles}
    missing = [r for r in ROLES if r not in have]
    if missing:
        me = os.getpid()
        # Siblings of what was found (children of one `convonet dev`) win over strangers.
        parents = {_parent(pid) for pid in found}
        candidates: dict[str, list[int]] = {role: [] for role in missing}
        for pid, argv in _all_cmdlines():
            if pid == me or pid in found:
                continue
            for role in missing:
                if _matches_cmdline(role, argv, ports):
                    candidates[role].append(pid)
        for role, pids in candidates.items():
            if not pids:
                continue
            pid = sorted(pids, key=lambda p: (_parent(p) not in parents, p))[0]
            target = found.get(pid) or _target(pid)
            if target is not None:
                found[pid] = target
                target.roles.append(role)
    for target in found.values():
        target.roles.sort(key=ROLES.index)
    return sorted(found.values(), key=lambda t: min(ROLES.index(r) for r in t.roles))


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _target(pid: int) -> Target | None:
    argv = _cmdline(pid)
    if argv is None:
        return None
    name = os.path.basename(argv[0]) if argv else str(pid)
    return Target(pid=pid, roles=[], name=name, cmdline=" ".join(argv)[:200])


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        if psutil is None:
            return None
        try:
            return list(psutil.Process(pid).cmdline())
        except psutil.Error:
            return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _all_cmdlines() -> list[tuple[int, list[str]]]:
    if psutil is not None:
        out: list[tuple[int, list[str]]] = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            argv = process.info.get("cmdline")
            if argv:
                out.append((process.info["pid"], list(argv)))
        return out
    result: list[tuple[int, list[str]]] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = _cmdline(int(entry.name))
            if argv:
                result.append((int(entry.name), argv))
    return result


def _listeners(ports: set[int]) -> dict[int, int]:
    """port -> pid of the process listening on it (processes we may inspect only)."""
    if psutil is not None:
        found: dict[int, int] = {}
        try:
            connections = psutil.net_connections(kind="inet")
        except psutil.Error:
            connections = []
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.pid is not None:
                if conn.laddr.port in ports and conn.laddr.port not in found:
                    found[conn.laddr.port] = conn.pid
        return found
    return _proc_listeners(ports)


def _proc_listeners(ports: set[int]) -> dict[int, int]:
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A":  # LISTEN
                port = int(parts[1].rsplit(":", 1)[1], 16)
                if port in ports:
                    inodes[parts[9]] = port
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    found.setdefault(inodes[link[8:-1]], int(entry.name))
        except OSError:
            continue
    return found


# --- sampling -------------------------------------------------------------------------------


# The bench's own callers: sampled and shown, never counted in the system's totals.
BENCH_ROLE = "bench-callers"


@dataclass
class Sample:
    at: float  # monotonic seconds
    # pid -> (CPU % of one core since the previous sample, RSS bytes); a pid that is gone
    # is absent.
    values: dict[int, tuple[float, int]]
    # The whole machine's CPU use, % of all cores (None when unknown).
    machine_cpu_pct: float | None = None


class _Reader:
    """CPU time and RSS of one process and of the helper processes it started."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.process = psutil.Process(pid) if psutil is not None else None
        self.last: tuple[float, float] | None = None  # (wall, cpu seconds)
        # Each helper's CPU seconds at the previous read: one that comes or goes between
        # reads is counted from its first read to its last.
        self.helper_cpu: dict[int, float] = {}
        self.helpers = 0
        self.helper_seconds = 0.0  # CPU of helpers since the first read

    def read(self) -> tuple[float, int] | None:
        now = time.monotonic()
        try:
            if self.process is not None:
                times = self.process.cpu_times()
                cpu = times.user + times.system
                rss = int(self.process.memory_info().rss)
                rss += self._read_helpers()
                cpu += self.helper_seconds
            else:
                cpu, rss = _proc_cpu_rss(self.pid)
        except Exception:  # gone, or not ours to read
            return None
        previous, self.last = self.last, (now, cpu)
        if previous is None or now <= previous[0]:
            return None
        return (100 * (cpu - previous[1]) / (now - previous[0]), rss)

    def _read_helpers(self) -> int:
        """Adds the helpers' CPU since the last read to `helper_seconds`; returns their RSS."""
        assert self.process is not None
        seen: dict[int, float] = {}
        rss = 0
        for child in self.process.children():
            try:
                argv = " ".join(child.cmdline())
                # Spawned helpers only: not a server of its own (a test's Temporal or Redis)
                # nor multiprocessing's bookkeeping.
                if "multiprocessing.spawn" not in argv:
                    continue
                times = child.cpu_times()
                seen[child.pid] = times.user + times.system
                rss += int(child.memory_info().rss)
            except Exception:  # gone between the listing and the read
                continue
        for pid, seconds in seen.items():
            self.helper_seconds += seconds - self.helper_cpu.get(pid, seconds)
        self.helper_cpu = seen
        self.helpers = max(self.helpers, len(seen))
        return rss


def _proc_cpu_rss(pid: int) -> tuple[float, int]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return cpu, pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sampler:
    """Samples the targets every `interval_s` while running (`async with`)."""

    targets: list[Target]
    interval_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _readers: list[_Reader] = field(default_factory=list)

    async def __aenter__(self) -> Sampler:
        self.targets = list(self.targets)
        self._readers = [_Reader(t.pid) for t in self.targets]
        for reader in self._readers:
            reader.read()  # primes the CPU counters
        if psutil is not None:
            psutil.cpu_percent()
        self._task = asyncio.create_task(self._run(self._readers))
        return self

    def watch_bench(self, pid: int) -> None:
        """Samples the bench's callers' process too (shown apart from the system)."""
        target = Target(pid=pid, roles=[BENCH_ROLE], name="python", cmdline="")
        self.targets.append(target)
        reader = _Reader(pid)
        reader.read()
        self._readers.append(reader)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, readers: list[_Reader]) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            values = {}
            for reader, target in zip(readers, self.targets, strict=True):
                value = reader.read()
                if value is not None:
                    values[reader.pid] = value
                target.helpers = max(target.helpers, reader.helpers)
            machine = psutil.cpu_percent() if psutil is not None else None
            self.samples.append(Sample(time.monotonic(), values, machine))

    def summary(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        chosen = [
            s
            for s in self.samples
            if (since is None or s.at >= since) and (until is None or s.at <= until)
        ]
        return process_summary(self.targets, chosen)


def process_summary(targets: Sequence[Target], samples: Sequence[Sample]) -> dict[str, Any]:
    """Mean and max of CPU (% of one core) and RSS (MB) per process and for all of them
    together (the sum at each sample, then its mean and max)."""
    processes: list[dict[str, Any]] = []
    for target in targets:
        values = [s.values[target.pid] for s in samples if target.pid in s.values]
        cpu = [v[0] for v in values]
        rss = [v[1] / MB for v in values]
        processes.append(
            {
                "pid": target.pid,
                "roles": list(target.roles),
                "name": target.name,
                "helpers": target.helpers,
                "samples": len(values),
                "cpu_pct": _mean_max(cpu),
                "rss_mb": _mean_max(rss),
            }
        )
    pids = {t.pid for t in targets if BENCH_ROLE not in t.roles}
    totals_cpu = [sum(v[0] for p, v in s.values.items() if p in pids) for s in samples]
    totals_rss = [sum(v[1] for p, v in s.values.items() if p in pids) / MB for s in samples]
    found = {role for t in targets for role in t.roles}
    machine = [s.machine_cpu_pct for s in samples if s.machine_cpu_pct is not None]
    return {
        "processes": processes,
        "total": {
            "samples": len(samples),
            "cpu_pct": _mean_max(totals_cpu),
            "rss_mb": _mean_max(totals_rss),
        },
        "machine": {"cores": os.cpu_count(), "cpu_pct_of_all_cores": _mean_max(machine)},
        "missing_roles": [r for r in ROLES if r not in found],
    }


def _round(value: float) -> float:
    return round(value, 1)


def _mean_max(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "max": None}
    return {"mean": _round(sum(values) / len(values)), "max": _round(max(values))}


def format_processes(summary: dict[str, Any]) -> list[str]:
    lines = [f"{'process':<28}{'pid':>8}{'CPU% mean':>11}{'max':>7}{'RSS MB mean':>13}{'max':>8}"]
    bench = [p for p in summary["processes"] if BENCH_ROLE in p["roles"]]
    for process in [p for p in summary["processes"] if p not in bench]:
        helpers = f" +{process['helpers']}" if process.get("helpers") else ""
        label = "+".join(process["roles"]) + f" ({process['name'][:12]}{helpers})"
        lines.append(
            f"{label:<28}{process['pid']:>8}{_cell(process['cpu_pct']['mean']):>11}"
            f"{_cell(process['cpu_pct']['max']):>7}{_cell(process['rss_mb']['mean']):>13}"
            f"{_cell(process['rss_mb']['max']):>8}"
        )
    total = summary["total"]
    lines.append(
        f"{'total':<28}{'':>8}{_cell(total['cpu_pct']['mean']):>11}"
        f"{_cell(total['cpu_pct']['max']):>7}{_cell(total['rss_mb']['mean']):>13}"
        f"{_cell(total['rss_mb']['max']):>8}"
    )
    for process in bench:
        lines.append(
            f"{'(the bench callers, apart)':<28}{process['pid']:>8}"
            f"{_cell(process['cpu_pct']['mean']):>11}{_cell(process['cpu_pct']['max']):>7}"
            f"{_cell(process['rss_mb']['mean']):>13}{_cell(process['rss_mb']['max']):>8}"
        )
    machine = summary.get("machine") or {}
    usage = (machine.get("cpu_pct_of_all_cores") or {}).get("mean")
    if usage is not None:
        peak = machine["cpu_pct_of_all_cores"]["max"]
        lines.append(
            f"whole machine: {usage:.0f}% of {machine.get('cores')} cores on average"
            f" (max {peak:.0f}%), everything on it included"
        )
    if any(p.get("helpers") for p in summary["processes"]):
        lines.append("+N: helper processes it started (speech decoders), counted with it")
    if summary.get("missing_roles"):
        lines.append(
            "not found (not on this machine, or inside another process): "
            + ", ".join(summary["missing_roles"])
        )
    return lines


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"
