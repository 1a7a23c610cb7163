"""`convonet bench load`: many simultaneous callers against a running system.

The callers run in a separate process (`convonet.bench.callers`), each logging in with a
demo PIN (round-robin; sessions may share a user) and speaking one of the latency bench's
commands every few seconds, jittered, in real time. This process meanwhile samples the CPU
and memory of the system's processes (API, worker, Temporal, Redis), and afterwards reads
each caller's conversation workflow from Temporal to size its history per turn.

- a run: N callers for S seconds; voice-to-voice p50/p95/p99 (the system's own figure,
  from each turn's `timings` event), failed turns by kind, process CPU/RSS, history size;
- `--ramp`: runs of 1, 2, 5, 10, 20, 35, 50, ... callers until voice-to-voice p95 passes
  the target (1 s) or a turn fails; the answer is the largest N that held;
- `--idle N`: N logged-in conversations that stay silent; the RSS of the system's
  processes with them open, against the target of 1000 idle conversations under 2 GB.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from convonet.bench import report
from convonet.bench.callers import FAILURES
from convonet.bench.direct import data_marks, find_caller, remove_added_data
from convonet.bench.latency import BenchAborted, probe
from convonet.bench.procs import (
    Sampler,
    Target,
    find_processes,
    format_processes,
    open_file_limit,
    raise_fd_limit,
)
from convonet.bench.utterances import COMMANDS, DEFAULT_VOICES, utterance_set
from convonet.settings import Settings

Print = Callable[[str], None]

DEMO_PINS = ("1234", "2345", "3456")
RAMP_STEPS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500)
TARGET_P95_MS = 1000.0
IDLE_TARGET = 1000
IDLE_TARGET_MB = 2048.0
TURN_TIMEOUT_S = 30.0
# Past its turns, the callers get this long (turns in flight, hang-ups) to finish.
GRACE_S = TURN_TIMEOUT_S + 20.0
PARTS = (
    report.END_OF_SPEECH,
    report.STT,
    report.LLM,
    report.TTS,
    report.ORCHESTRATION,
    report.V2V,
)


@dataclass
class LoadOptions:
    url: str
    callers: int = 10
    duration_s: float = 60.0
    interval_s: float = 3.0
    pins: tuple[str, ...] = DEMO_PINS
    voices: tuple[str, ...] = DEFAULT_VOICES
    commands: tuple[str, ...] = COMMANDS
    speed: float = 1.0
    ramp: bool = False
    ramp_steps: tuple[int, ...] = RAMP_STEPS
    max_callers: int = 200
    max_time_s: float = 900.0
    target_p95_ms: float = TARGET_P95_MS
    idle: int = 0
    hold_s: float = 10.0
    login_concurrency: int = 20
    keep_data: bool = False
    json_path: Path | None = None
    seed: int = 1


# --- pure figures ---------------------------------------------------------------------------


def turn_figures(callers: Sequence[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    """Voice-to-voice and its parts over the turns that succeeded, and the failed turns by
    kind, from the callers' results."""
    turns = [t for c in callers for t in c.get("turns", [])]
    good = [t for t in turns if t.get("failure") is None]
    failures = {kind: sum(t.get("failure") == kind for t in turns) for kind in FAILURES}
    return {
        "turns": len(turns),
        "succeeded": len(good),
        "failed": sum(failures.values()),
        "failures": failures,
        "turns_per_s": round(len(turns) / duration_s, 2) if duration_s > 0 else None,
        "parts": {
            part: report.summarize((t.get("timings") or {}).get(part) for t in good)
            for part in PARTS
        },
        "failure_examples": [
            {
                "caller": c["index"],
                "turn": t["turn"],
                "key": t["key"],
                "failure": t["failure"],
                "error": t["error"],
            }
            for c in callers
            for t in c.get("turns", [])
            if t.get("failure")
        ][:20],
    }


def step_held(figures: dict[str, Any], target_p95_ms: float) -> tuple[bool, str]:
    """A ramp step holds when every turn succeeded and voice-to-voice p95 is within target."""
    if figures["turns"] == 0:
        return False, "no turn was spoken"
    if figures["failed"]:
        return False, f"{figures['failed']} of {figures['turns']} turns failed"
    p95 = figures["parts"][report.V2V]["p95"]
    if p95 is None:
        return False, "no voice-to-voice figure"
    if p95 > target_p95_ms:
        return False, f"voice-to-voice p95 {p95:.0f} ms > {target_p95_ms:.0f} ms"
    return True, f"voice-to-voice p95 {p95:.0f} ms"


def history_figures(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Temporal history per turn: each conversation's events and bytes over its answered
    turns (login and hang-up included, so a short call shows the fixed part too)."""
    with_turns = [r for r in rows if r.get("turns") and r.get("events") is not None]
    events = [r["events"] / r["turns"] for r in with_turns]
    sizes = [r["bytes"] / r["turns"] for r in with_turns if r.get("bytes") is not None]
    total_turns = sum(r["turns"] for r in with_turns)
    return {
        "conversations": len(rows),
        "measured": len(with_turns),
        "events_per_turn": _mean_max(events),
        "bytes_per_turn": _mean_max(sizes),
        "overall_events_per_turn": (
            round(sum(r["events"] for r in with_turns) / total_turns, 1) if total_turns else None
        ),
        "overall_bytes_per_turn": (
            round(sum(r.get("bytes") or 0 for r in with_turns) / total_turns, 1)
            if total_turns
            else None
        ),
        "continued_as_new": sum(bool(r.get("continued_as_new")) for r in rows),
        "conversations_detail": list(rows),
    }


def _mean_max(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "max": None}
    return {"mean": round(sum(values) / len(values), 1), "max": round(max(values), 1)}


def idle_figures(
    count: int, opened: int, baseline_mb: float | None, loaded_mb: float | None
) -> dict[str, Any]:
    """RSS of the system with `opened` idle conversations, per conversation and projected
    to the target's 1000."""
    per_conversation = None
    projected = None
    if baseline_mb is not None and loaded_mb is not None and opened:
        per_conversation = (loaded_mb - baseline_mb) / opened
        projected = baseline_mb + per_conversation * IDLE_TARGET
    return {
        "requested": count,
        "opened": opened,
        "baseline_rss_mb": _r(baseline_mb),
        "rss_mb": _r(loaded_mb),
        "per_conversation_kb": _r(None if per_conversation is None else per_conversation * 1024),
        "projected_rss_mb_for_1000": _r(projected),
        "target_mb": IDLE_TARGET_MB,
        "meets_target": None if projected is None else projected < IDLE_TARGET_MB,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- running ---------------------------------------------------------------------------------


@dataclass
class _Child:
    """One run of the callers' process: its result and when its phases began."""

    result: dict[str, Any] | None = None
    ready_at: float | None = None
    release_at: float | None = None
    ended_at: float | None = None
    killed: bool = False
    lines: list[str] = field(default_factory=list)


async def run_callers(
    plan: dict[str, Any], out: Print, limit_s: float, sampler: Sampler | None = None
) -> _Child:
    """Runs the callers' process with `plan`, forwarding its progress; stops it after
    `limit_s` seconds. The sampler, if any, samples that process too."""
    child = _Child()
    with tempfile.TemporaryDirectory(prefix="convonet-bench-") as scratch:
        plan_path, result_path = Path(scratch) / "plan.json", Path(scratch) / "result.json"
        plan_path.write_text(json.dumps(plan))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "convonet.bench.callers",
            str(plan_path),
            str(result_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        if sampler is not None:
            sampler.watch_bench(process.pid)

        async def forward() -> None:
            assert process.stdout is not None
            while line := await process.stdout.readline():
                text = line.decode(errors="replace").rstrip()
                if text == "@@ready":
                    child.ready_at = time.monotonic()
                elif text == "@@release":
                    child.release_at = time.monotonic()
                elif text:
                    child.lines.append(text)
                    out(f"  | {text}")

        reader = asyncio.create_task(forward())
        try:
            await asyncio.wait_for(process.wait(), limit_s)
        except TimeoutError:
            child.killed = True
            out(f"the callers' process ran past {limit_s:.0f} s; stopping it")
            process.kill()
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader, 5)
        child.ended_at = time.monotonic()
        if result_path.exists():
            child.result = json.loads(result_path.read_text())
    return child


def _plan(
    options: LoadOptions, mode: str, callers: int, utterances: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "mode": mode,
        "url": options.url,
        "callers": callers,
        "pins": list(options.pins),
        "duration_s": options.duration_s,
        "interval_s": options.interval_s,
        "turn_timeout_s": TURN_TIMEOUT_S,
        "speed": options.speed,
        "seed": options.seed,
        "hold_s": options.hold_s,
        "login_concurrency": options.login_concurrency,
        "login_timeout_s": _login_limit(callers),
        "finish_timeout_s": _finish_limit(callers),
        "utterances": utterances,
    }


def _login_limit(callers: int) -> float:
    """How long the callers may take to log in before the measured phase starts anyway."""
    return 30 + 0.3 * callers


def _finish_limit(callers: int) -> float:
    """How long turns in flight and the hang-ups may take after the measured phase."""
    return GRACE_S + 0.05 * callers


def _process_limit(options: LoadOptions, callers: int, measured_s: float) -> float:
    """When the callers' process is stopped if it has not ended by itself (it bounds its
    own phases, so this is only a backstop)."""
    return _login_limit(callers) + measured_s + _finish_limit(callers) + 30


async def conversation_histories(
    settings: Settings, callers: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """History length and size of each caller's conversation workflow, now."""
    from convonet.temporal_client import connect
    from workflows.conversation.models import workflow_id_for

    client = await asyncio.wait_for(connect(settings), 10)
    gate = asyncio.Semaphore(20)

    async def one(caller: dict[str, Any]) -> dict[str, Any]:
        turns = sum(1 for t in caller.get("turns", []) if t.get("replied"))
        row: dict[str, Any] = {
            "conversation_id": caller["conversation_id"],
            "turns": turns,
            "events": None,
            "bytes": None,
        }
        async with gate:
            try:
                handle = client.get_workflow_handle(workflow_id_for(caller["conversation_id"]))
                described = await asyncio.wait_for(handle.describe(), 10)
            except Exception as error:  # gone, or Temporal unreachable: reported, not fatal
                row["error"] = f"{type(error).__name__}: {error}"[:200]
                return row
        info = described.raw_description.workflow_execution_info
        row.update(
            events=int(info.history_length),
            bytes=int(info.history_size_bytes),
            status=described.status.name if described.status else None,
            continued_as_new=bool(info.first_run_id and info.first_run_id != described.run_id),
        )
        return row

    return list(await asyncio.gather(*(one(c) for c in callers if c.get("conversation_id"))))


def _utterance_payload(options: LoadOptions) -> list[dict[str, str]]:
    return [
        {"key": u.key, "pcm_b64": base64.b64encode(u.pcm).decode()}
        for u in utterance_set(options.commands, options.voices)
    ]


async def _load_run(
    settings: Settings,
    options: LoadOptions,
    targets: list[Target],
    utterances: list[dict[str, str]],
    callers: int,
    out: Print,
) -> dict[str, Any]:
    """One run of `callers` simultaneous callers: every figure of it."""
    plan = _plan(options, "load", callers, utterances)
    limit = _process_limit(options, callers, options.duration_s + options.interval_s * 1.5)
    async with Sampler(targets) as sampler:
        child = await run_callers(plan, out, limit, sampler)
    result = child.result or {"callers": [], "logged_in": 0}
    measured = (child.ended_at or time.monotonic()) - child.ready_at if child.ready_at else 0.0
    figures = turn_figures(result["callers"], options.duration_s)
    histories = await conversation_histories(settings, result["callers"])
    return {
        "callers": callers,
        "logged_in": result.get("logged_in", 0),
        "login_s": result.get("login_s"),
        "login_errors": [c["error"] for c in result["callers"] if c.get("error")][:10],
        "connect_retries": sum(c.get("connect_retries", 0) for c in result["callers"]),
        "measured_s": round(measured, 1),
        "complete": child.result is not None and not child.killed,
        **figures,
        "processes": sampler.summary(since=child.ready_at, until=child.ended_at),
        "history": history_figures(histories),
    }


def format_run(run: dict[str, Any]) -> list[str]:
    lines = [
        f"load: {run['callers']} callers ({run['logged_in']} logged in), {run['turns']} turns"
        f" in {run['measured_s']:.0f} s, {run['succeeded']} succeeded, {run['failed']} failed",
        f"{'ms':<22}{'p50':>7}{'p95':>7}{'p99':>7}{'mean':>7}{'max':>7}{'n':>6}",
    ]
    for part in PARTS:
        summary = run["parts"][part]
        if not summary["n"]:
            continue
        cells = [summary[k] for k in ("p50", "p95", "p99", "mean", "max")]
        lines.append(
            f"{report.LABELS.get(part, part):<22}"
            + "".join(f"{'-' if v is None else f'{v:.0f}':>7}" for v in cells)
            + f"{summary['n']:>6}"
        )
    kinds = ", ".join(
        f"{kind.replace('_', ' ')} {count}" for kind, count in run["failures"].items()
    )
    lines.append(f"failed turns: {run['failed']} ({kinds})")
    if run.get("connect_retries"):
        lines.append(f"connections retried (refused or timed out): {run['connect_retries']}")
    if run.get("login_errors"):
        lines.append(
            f"callers that could not log in or lost their connection: {len(run['login_errors'])},"
            f" e.g. {run['login_errors'][0]}"
        )
    lines.append("processes during the run (CPU % of one core; RSS):")
    lines.extend("  " + line for line in format_processes(run["processes"]))
    history = run["history"]
    events, size = history["events_per_turn"], history["bytes_per_turn"]
    if events["mean"] is not None:
        lines.append(
            f"Temporal history per turn over {history['measured']} conversations:"
            f" {events['mean']:.1f} events (max {events['max']:.1f}),"
            f" {(size['mean'] or 0) / 1024:.1f} KB (max {(size['max'] or 0) / 1024:.1f} KB);"
            f" overall {history['overall_events_per_turn']} events/turn"
        )
        if history["continued_as_new"]:
            lines.append(
                f"  {history['continued_as_new']} conversation(s) continued as new: their"
                " figures cover the latest run only"
            )
    return lines


async def run_load(settings: Settings, options: LoadOptions, out: Print = print) -> int:
    """Runs `bench load` (a run, a ramp or idle); prints the figures, writes --json; the exit
    code."""
    started_at = datetime.now(UTC)
    began = time.monotonic()
    soft, _hard = raise_fd_limit()
    try:
        await probe(options.url)
    except BenchAborted as error:
        print(f"bench load: {error}", file=sys.stderr, flush=True)
        return 2
    targets = find_processes(settings, options.url)
    out(
        "system processes: "
        + (", ".join(f"{'+'.join(t.roles)} (pid {t.pid})" for t in targets) or "none found")
    )
    meta: dict[str, Any] = {
        "bench": "load",
        "url": options.url,
        "started_at": started_at.isoformat(),
        "open_files_limit": soft,
        "options": {
            "callers": options.callers,
            "duration_s": options.duration_s,
            "interval_s": options.interval_s,
            "pins": list(options.pins),
            "voices": list(options.voices),
            "commands": list(options.commands),
            "speed": options.speed,
            "ramp": options.ramp,
            "idle": options.idle,
        },
        "processes_found": [
            {"pid": t.pid, "roles": t.roles, "name": t.name, "cmdline": t.cmdline} for t in targets
        ],
    }
    if options.idle:
        figures, code = await _idle(settings, options, targets, out)
    else:
        figures, code = await _turns(settings, options, targets, out)
    figures = {**meta, **figures, "duration_s": round(time.monotonic() - began, 1)}
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(figures, indent=2) + "\n")
        out(f"figures written to {options.json_path}")
    return code


async def _turns(
    settings: Settings, options: LoadOptions, targets: list[Target], out: Print
) -> tuple[dict[str, Any], int]:
    users = {}
    for pin in options.pins:
        caller = await find_caller(settings, pin)
        if caller is None:
            print(
                f"bench load: PIN {pin} matches no active user in this bench's database; run it"
                " with the system's settings (same directory and .env as `make run`), after"
                " `convonet seed`",
                file=sys.stderr,
                flush=True,
            )
            return {}, 2
        users[caller.user_id] = await data_marks(settings, caller.user_id)
    out(f"synthesizing {len(options.commands)} commands in {len(options.voices)} voice(s)")
    utterances = await asyncio.to_thread(_utterance_payload, options)
    figures: dict[str, Any] = {}
    code = 0
    try:
        if options.ramp:
            figures, code = await _ramp(settings, options, targets, utterances, out)
        else:
            out(f"{options.callers} callers for {options.duration_s:.0f} s")
            run = await _load_run(settings, options, targets, utterances, options.callers, out)
            out("")
            for line in format_run(run):
                out(line)
            figures = {"run": run}
            code = 0 if run["turns"] else 1
    finally:
        if not options.keep_data:
            removed = 0
            for user_id, marks in users.items():
                removed += await remove_added_data(settings, user_id, marks)
            out(f"removed the {removed} todo(s), reminder(s) and event(s) the bench created")
    return figures, code


async def _ramp(
    settings: Settings,
    options: LoadOptions,
    targets: list[Target],
    utterances: list[dict[str, str]],
    out: Print,
) -> tuple[dict[str, Any], int]:
    began = time.monotonic()
    steps = [n for n in options.ramp_steps if n <= options.max_callers]
    runs: list[dict[str, Any]] = []
    held: int | None = None
    stopped = "every step held"
    for callers in steps:
        estimate = _login_limit(callers) / 2 + options.duration_s + 15
        if time.monotonic() - began + estimate > options.max_time_s:
            stopped = f"time limit of {options.max_time_s:.0f} s reached before {callers} callers"
            break
        out(f"ramp step: {callers} caller(s) for {options.duration_s:.0f} s")
        run = await _load_run(settings, options, targets, utterances, callers, out)
        ok, why = step_held(run, options.target_p95_ms)
        run["held"], run["verdict"] = ok, why
        runs.append(run)
        out(f"  -> {callers} caller(s): {'held' if ok else 'did not hold'} ({why})")
        if not ok:
            stopped = f"{callers} callers did not hold: {why}"
            break
        held = callers
    out("")
    out(
        f"{'callers':>8}{'turns':>7}{'failed':>8}{'p50':>7}{'p95':>7}{'p99':>7}{'CPU%':>7}"
        f"{'RSS MB':>8}  verdict"
    )
    for run in runs:
        v2v = run["parts"][report.V2V]
        total = run["processes"]["total"]
        cells = [v2v["p50"], v2v["p95"], v2v["p99"]]
        out(
            f"{run['callers']:>8}{run['turns']:>7}{run['failed']:>8}"
            + "".join(f"{'-' if v is None else f'{v:.0f}':>7}" for v in cells)
            + f"{_num(total['cpu_pct']['mean']):>7}{_num(total['rss_mb']['max']):>8}"
            + f"  {'held' if run['held'] else 'failed'}"
        )
    out(f"ramp stopped: {stopped}")
    rule = f"p95 ≤ {options.target_p95_ms:.0f} ms, no failed turn"
    out(f"largest number of callers that held ({rule}): {'none' if held is None else held}")
    if runs:
        out("")
        out("last step in detail:")
        for line in format_run(runs[-1]):
            out(line)
    return {"ramp": {"steps": runs, "largest_held": held, "stopped": stopped}}, 0 if runs else 1


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


async def _idle(
    settings: Settings, options: LoadOptions, targets: list[Target], out: Print
) -> tuple[dict[str, Any], int]:
    api = next((t for t in targets if "api" in t.roles), None)
    limit = open_file_limit(api.pid) if api is not None else None
    if limit is not None and limit < options.idle + 256:
        out(
            f"warning: the API process may open only {limit} files; {options.idle} connections"
            " need more (raise `ulimit -n` where it starts)"
        )
    out(f"opening {options.idle} idle conversations ({options.login_concurrency} at a time)")
    plan = _plan(options, "idle", options.idle, [])
    async with Sampler(targets) as sampler:
        await asyncio.sleep(3)  # the baseline, before any connection
        baseline_until = time.monotonic()
        child = await run_callers(
            plan,
            out,
            _process_limit(options, options.idle, options.hold_s),
            sampler,
        )
    baseline = sampler.summary(until=baseline_until)
    loaded = sampler.summary(since=child.ready_at, until=child.release_at)
    result = child.result or {"callers": [], "logged_in": 0}
    opened = int(result.get("logged_in", 0))
    figures = idle_figures(
        options.idle, opened, baseline["total"]["rss_mb"]["mean"], loaded["total"]["rss_mb"]["mean"]
    )
    errors = [c["error"] for c in result["callers"] if c.get("error")]
    figures.update(
        connect_retries=sum(c.get("connect_retries", 0) for c in result["callers"]),
        still_open_at_end=result.get("still_open"),
        login_ms=report.summarize(c.get("login_ms") for c in result["callers"]),
        login_s=result.get("login_s"),
        failed=len(errors),
        errors=errors[:10],
        hold_s=options.hold_s,
        complete=child.result is not None and not child.killed,
    )
    out("")
    out(
        f"idle: {opened} of {options.idle} conversations open and logged in"
        f" (in {result.get('login_s') or 0:.0f} s; {len(errors)} failed),"
        f" held {options.hold_s:.0f} s"
    )
    if errors:
        out(f"  e.g. {errors[0]}")
    login = figures["login_ms"]
    if login["n"]:
        out(
            f"  one connect + login took p50 {login['p50']:.0f} ms, p95 {login['p95']:.0f} ms"
            f" ({options.login_concurrency} at a time)"
        )
    still = result.get("still_open")
    if still is not None and still < opened:
        out(
            f"  only {still} were still open at the end of the hold: the others had ended"
            " (idle timeout) or dropped"
        )
    out(
        f"RSS of the system's processes: {_num(figures['baseline_rss_mb'])} MB before,"
        f" {_num(figures['rss_mb'])} MB with them open"
        f" (max {_num(loaded['total']['rss_mb']['max'])} MB);"
        f" {_num(figures['per_conversation_kb'])} KB per conversation"
    )
    out("processes with the conversations open:")
    for line in format_processes(loaded):
        out("  " + line)
    if figures["projected_rss_mb_for_1000"] is not None:
        verdict = "met" if figures["meets_target"] else "NOT met"
        out(
            f"target (1000 idle conversations under {IDLE_TARGET_MB:.0f} MB):"
            f" {figures['projected_rss_mb_for_1000']:.0f} MB"
            f"{' measured' if opened == IDLE_TARGET else ' projected'}: {verdict}"
        )
    return {"idle": {**figures, "baseline": baseline, "processes": loaded}}, 0 if opened else 1
