"""`convonet bench latency`: voice-to-voice latency of a running system, and of its engines
alone, for the same utterances in the same run.

Full path: calls through the public socket (`ScriptedCaller`), each logging in with the PIN
and speaking a few utterances in real time; the figures are the system's own, from each
turn's `timings` event. Direct path: the same utterances through the same engines in this
process (`convonet.bench.direct`). Calls alternate: a full call, then the same turns on
the direct path, so both see the machine in the same state. The overhead of the system
(Temporal, Redis, sockets) is full minus direct, paired per utterance and voice.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import socketio

from convonet.bench import report
from convonet.bench.direct import (
    BenchCaller,
    DirectCall,
    DirectEngines,
    DirectFailed,
    data_marks,
    find_caller,
    remove_added_data,
)
from convonet.bench.utterances import COMMANDS, DEFAULT_VOICES, Utterance, schedule, utterance_set
from convonet.call_client import CallFailed, ScriptedCaller
from convonet.settings import Settings

PROBE_TIMEOUT_S = 5.0
# Past the time limit, a turn already under way gets this long to finish before the run
# is cut short.
GRACE_S = 90.0

Print = Callable[[str], None]


class BenchAborted(Exception):
    """The bench cannot go on; the message says why and what to do."""


@dataclass
class LatencyOptions:
    url: str
    pin: str = "1234"
    calls: int = 6
    turns: int = 4
    voices: tuple[str, ...] = DEFAULT_VOICES
    commands: tuple[str, ...] = COMMANDS
    speed: float = 1.0
    warmup: int = 1
    timeout_s: float = 900.0
    # Keep the todos, reminders and events the caller's turns created.
    keep_data: bool = False
    json_path: Path | None = None
    plot_path: Path | None = None


@dataclass
class _Run:
    options: LatencyOptions
    out: Print
    deadline: float
    full: list[report.TurnSample] = field(default_factory=list)
    direct: list[report.TurnSample] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    engines: dict[str, str] = field(default_factory=dict)
    complete: bool = True

    def out_of_time(self) -> bool:
        if time.monotonic() < self.deadline:
            return False
        if self.complete:
            self.out(f"time limit of {self.options.timeout_s:.0f} s reached; reporting so far")
        self.complete = False
        return True


async def probe(url: str) -> None:
    """Raises BenchAborted unless a healthy Convonet answers at `url`."""
    unreachable = f"no Convonet at {url} — start it with `make run`"
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.get(f"{url.rstrip('/')}/healthz")
    except httpx.HTTPError as error:
        raise BenchAborted(f"{unreachable} ({type(error).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        raise BenchAborted(f"{unreachable} (GET /healthz answered {response.status_code})")
    if body["status"] != "ok":
        down = [n for n, v in body.items() if isinstance(v, dict) and not v.get("ok", True)]
        raise BenchAborted(f"Convonet at {url} is not healthy: {', '.join(down) or 'degraded'}")


async def run_latency(settings: Settings, options: LatencyOptions, out: Print = print) -> int:
    """Runs the bench, prints the figures, writes --json/--plot; the process exit code."""
    started_at = datetime.now(UTC)
    began = time.monotonic()
    run = _Run(options, out, deadline=began + options.timeout_s)
    try:
        await asyncio.wait_for(_bench(settings, run), options.timeout_s + GRACE_S)
    except BenchAborted as error:
        print(f"bench latency: {error}", file=sys.stderr, flush=True)
        return 2
    except TimeoutError:
        run.complete = False
        out(f"bench stopped: a turn was still running {GRACE_S:.0f} s past the time limit")
    meta = {
        "bench": "latency",
        "url": options.url,
        "started_at": started_at.isoformat(),
        "duration_s": round(time.monotonic() - began, 1),
        "complete": run.complete,
        "engines": run.engines,
        "settings": {
            "end_of_speech_silence_ms": settings.end_of_speech_silence_ms,
            "vad_aggressiveness": settings.vad_aggressiveness,
        },
        "options": {
            "calls": options.calls,
            "turns_per_call": options.turns,
            "voices": list(options.voices),
            "commands": list(options.commands),
            "speed": options.speed,
            "warmup_turns": options.warmup,
        },
    }
    figures = report.build_report(meta, run.full, run.direct, run.failures)
    out("")
    out(report.format_report(figures))
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(figures, indent=2) + "\n")
        out(f"figures written to {options.json_path}")
    if options.plot_path is not None:
        from convonet.bench.plot import write_plot

        write_plot(figures, options.plot_path)
        out(f"plot written to {options.plot_path}")
    if not run.full or not run.direct:
        out("bench latency: no complete turn on both paths; nothing to compare")
        return 1
    return 0


async def _bench(settings: Settings, run: _Run) -> None:
    options, out = run.options, run.out
    await probe(options.url)
    caller = await find_caller(settings, options.pin)
    if caller is None:
        raise BenchAborted(
            f"PIN {options.pin} matches no active user in this bench's database; run it with"
            " the system's settings (same directory and .env as `make run`), after"
            " `convonet seed`"
        )
    out(
        f"synthesizing {len(options.commands)} commands in {len(options.voices)} voice(s)"
        f" ({', '.join(options.voices)}) with eSpeak NG"
    )
    utterances = await asyncio.to_thread(utterance_set, options.commands, options.voices)
    before = await data_marks(settings, caller.user_id)
    engines = DirectEngines.from_settings(settings)
    run.engines = engines.names()
    out(
        "direct path engines: "
        + ", ".join(f"{kind} {name}" for kind, name in engines.names().items())
    )
    try:
        if options.warmup > 0:
            out(f"warming up both paths ({options.warmup} turn(s), not counted)")
            warmup = schedule(utterances, 1, options.warmup)[0]
            scratch = _Run(options, lambda _line: None, run.deadline)
            await _direct_call(scratch, engines, caller, 0, await _full_call(scratch, 0, warmup))
            run.failures.extend({**f, "warmup": True} for f in scratch.failures)
        plan = schedule(utterances, options.calls, options.turns)
        for number, turns in enumerate(plan, start=1):
            if run.out_of_time():
                break
            # The direct path replays what the full call got to, even past the time limit,
            # so every full-path turn can have its pair.
            attempted = await _full_call(run, number, turns)
            await _direct_call(run, engines, caller, number, attempted)
    finally:
        await engines.aclose()
        if not options.keep_data:
            removed = await remove_added_data(settings, caller.user_id, before)
            out(f"removed the {removed} todo(s), reminder(s) and event(s) the bench created")


def _label(path: str, call: int, calls: int, turn: int, utterance: Utterance) -> str:
    return f"[{path:<6} call {call}/{calls} turn {turn}] {utterance.voice:<9} {utterance.text!r}"


def _brief(timings: report.Timings) -> str:
    def ms(part: str) -> str:
        value = timings.get(part)
        return "-" if value is None else f"{value:.0f}"

    return (
        f"v2v {ms(report.V2V)} ms (stt {ms(report.STT)}, llm {ms(report.LLM)},"
        f" tts {ms(report.TTS)})"
    )


async def _full_call(run: _Run, number: int, turns: Sequence[Utterance]) -> list[Utterance]:
    """One call through the socket; the utterances it spoke (or tried to)."""
    options = run.options
    caller = ScriptedCaller(options.url)
    attempted: list[Utterance] = []
    try:
        try:
            await caller.connect()
            await caller.login(options.pin)
        except (socketio.exceptions.ConnectionError, TimeoutError) as error:
            raise BenchAborted(
                f"no Convonet at {options.url} — start it with `make run` ({error})"
            ) from None
        except CallFailed as error:
            raise BenchAborted(f"login with PIN {options.pin} failed: {error}") from None
        for index, utterance in enumerate(turns, start=1):
            if run.out_of_time():
                break
            label = _label(report.FULL, number, options.calls, index, utterance)
            attempted.append(utterance)
            try:
                reply = await caller.speak(utterance.pcm, speed=options.speed)
            except (CallFailed, TimeoutError) as error:
                reason = error if isinstance(error, CallFailed) else "no reply in time"
                _fail(run, report.FULL, number, index, utterance, reason)
                break  # the call is in an unknown state: the next call starts afresh
            timings = reply.get("timings") or {}
            if not reply.get("user"):
                _fail(run, report.FULL, number, index, utterance, "nothing was heard")
                continue
            if _number(timings.get(report.V2V)) is None:
                reason = f"the system reported no voice-to-voice figure (timings: {timings})"
                _fail(run, report.FULL, number, index, utterance, reason)
                continue
            sample = report.TurnSample(
                path=report.FULL,
                text=utterance.text,
                voice=utterance.voice,
                call=number,
                turn=index,
                heard=str(reply.get("user", "")),
                reply=str(reply.get("assistant", "")),
                tools=[str(c.get("name")) for c in reply.get("tool_calls") or []],
                timings={
                    part: _number(timings.get(part))
                    for part in (*report.PARTS, *report.OPTIONAL_PARTS)
                },
            )
            run.full.append(sample)
            run.out(f"{label} → {_brief(sample.timings)}")
        try:
            await caller.request("hang_up", {})
        except (socketio.exceptions.SocketIOError, TimeoutError):
            pass
    finally:
        await caller.close()
    return attempted


async def _direct_call(
    run: _Run,
    engines: DirectEngines,
    caller: BenchCaller,
    number: int,
    turns: Sequence[Utterance],
) -> None:
    call = DirectCall(engines, caller, speed=run.options.speed)
    for index, utterance in enumerate(turns, start=1):
        label = _label(report.DIRECT, number, run.options.calls, index, utterance)
        try:
            turn = await call.speak(utterance)
        except DirectFailed as error:
            _fail(run, report.DIRECT, number, index, utterance, error)
            continue
        sample = report.TurnSample(
            path=report.DIRECT,
            text=utterance.text,
            voice=utterance.voice,
            call=number,
            turn=index,
            heard=turn.heard,
            reply=turn.reply,
            tools=turn.tools,
            timings=turn.timings,
        )
        run.direct.append(sample)
        run.out(f"{label} → {_brief(sample.timings)}")


def _fail(run: _Run, path: str, call: int, turn: int, utterance: Utterance, error: object) -> None:
    reason = str(error) or type(error).__name__
    run.failures.append(
        {"path": path, "call": call, "turn": turn, "key": utterance.key, "error": reason}
    )
    run.out(f"{_label(path, call, run.options.calls, turn, utterance)} failed: {reason}")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
