"""The simulated callers of `convonet bench load`, run in a process of their own:

    python -m convonet.bench.callers PLAN.json RESULT.json

so that their work (sockets, pacing, decoding) never shares a CPU core or an event loop with
the bench's sampling, nor counts as the system's. The plan (written by `convonet.bench.load`)
says what to do; the result file gets every turn. Lines on stdout are progress for people,
except those starting with `@@`, which tell the bench where a phase starts:

- `@@ready`: every caller is logged in (load: the measured phase starts; idle: the
  conversations are open and idle),
- `@@release`: the idle conversations are about to be hung up.

Modes: `load` — each caller logs in (PINs round-robin), then speaks a command every few
seconds (jittered) in real time until the duration is over; `idle` — N callers log in and
stay silent for the hold time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import socketio

from convonet.bench.procs import raise_fd_limit
from convonet.call_client import CallFailed, ScriptedCaller

# Timings the system reports per turn, kept for the report.
TIMING_KEYS = (
    "end_of_speech_ms",
    "stt_final_ms",
    "llm_first_token_ms",
    "tts_first_audio_ms",
    "voice_to_voice_ms",
    "orchestration_ms",
)
# What a failed turn was.
NO_REPLY = "no_reply"
ERROR = "error"
MISSING_TIMINGS = "missing_timings"
NOT_HEARD = "not_heard"
FAILURES = (NO_REPLY, ERROR, MISSING_TIMINGS, NOT_HEARD)
REQUEST_TIMEOUT_S = 20.0
CONNECT_ATTEMPTS = 3


@dataclass
class Turn:
    turn: int
    key: str
    started_s: float  # since the measured phase began
    failure: str | None = None
    error: str = ""
    replied: bool = False
    timings: dict[str, float | None] = field(default_factory=dict)
    heard: str = ""


@dataclass
class CallerResult:
    index: int
    pin: str
    conversation_id: str = ""
    login_ms: float | None = None
    error: str = ""
    connect_retries: int = 0
    turns: list[Turn] = field(default_factory=list)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _say(line: str) -> None:
    print(line, flush=True)


class _Run:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.url: str = plan["url"]
        self.pins: list[str] = list(plan["pins"])
        self.random = random.Random(plan.get("seed", 0))
        self.utterances = [
            (u["key"], base64.b64decode(u["pcm_b64"])) for u in plan.get("utterances", [])
        ]
        self.results = [
            CallerResult(index=i, pin=self.pins[i % len(self.pins)])
            for i in range(int(plan["callers"]))
        ]
        self.gate = asyncio.Semaphore(int(plan.get("login_concurrency", 20)))
        self.measured_from = 0.0
        self.ready = asyncio.Event()
        # Idle: conversations still connected and not ended when the hold was over.
        self.still_open: int | None = None
        self.release = asyncio.Event()

    async def open(self, result: CallerResult) -> ScriptedCaller | None:
        """Connects and logs in, retrying a refused or timed-out connection twice."""
        for attempt in range(CONNECT_ATTEMPTS):
            caller = await self._open(result)
            if caller is not None or not result.error.startswith("ConnectionError"):
                return caller
            result.connect_retries = attempt + 1
            await asyncio.sleep(1.0 + attempt)
        return None

    async def _open(self, result: CallerResult) -> ScriptedCaller | None:
        result.error = ""
        caller = ScriptedCaller(self.url)
        async with self.gate:
            started = time.perf_counter()
            try:
                status = await asyncio.wait_for(caller.connect(), REQUEST_TIMEOUT_S)
                result.conversation_id = str(status.get("conversation_id", ""))
                await asyncio.wait_for(caller.login(result.pin), REQUEST_TIMEOUT_S)
                if self.plan["mode"] == "load":
                    await asyncio.wait_for(caller.open_mic(), REQUEST_TIMEOUT_S)
            except (CallFailed, TimeoutError, socketio.exceptions.SocketIOError, OSError) as error:
                result.error = f"{type(error).__name__}: {error}"[:300]
                await _quiet_close(caller)
                return None
            result.login_ms = round((time.perf_counter() - started) * 1000, 1)
        return caller

    async def speak_turns(self, caller: ScriptedCaller, result: CallerResult) -> None:
        plan = self.plan
        deadline = self.measured_from + float(plan["duration_s"])
        interval = float(plan["interval_s"])
        # Staggered first turns, so callers do not speak in lockstep.
        await asyncio.sleep(self.random.uniform(0, interval))
        number = 0
        while time.monotonic() < deadline:
            number += 1
            key, pcm = self.utterances[(result.index * 7 + number - 1) % len(self.utterances)]
            turn = Turn(
                turn=number, key=key, started_s=round(time.monotonic() - self.measured_from, 2)
            )
            result.turns.append(turn)
            await self._turn(caller, pcm, turn, float(plan["turn_timeout_s"]))
            if turn.failure:
                failed = f"{turn.failure}: {turn.error}"
                _say(f"caller {result.index} turn {number} {key!r} failed ({failed})")
            if not caller.sio.connected:
                result.error = "the connection was lost"
                return
            await asyncio.sleep(interval * self.random.uniform(0.5, 1.5))

    async def _turn(self, caller: ScriptedCaller, pcm: bytes, turn: Turn, timeout: float) -> None:
        try:
            reply = await asyncio.wait_for(
                caller.speak(pcm, speed=float(self.plan["speed"])), timeout
            )
        except TimeoutError:
            turn.failure, turn.error = NO_REPLY, f"no reply within {timeout:.0f} s"
            return
        except asyncio.CancelledError:
            turn.failure, turn.error = NO_REPLY, "no reply before the bench stopped"
            raise
        except CallFailed as error:
            text = str(error)
            turn.failure = NO_REPLY if "no speech" in text else ERROR
            turn.error = text[:300]
            return
        except Exception as error:  # the socket broke: the turn did not complete
            turn.failure, turn.error = ERROR, f"{type(error).__name__}: {error}"[:300]
            return
        turn.replied = True
        turn.heard = str(reply.get("user") or "")
        timings = reply.get("timings") or {}
        turn.timings = {k: _number(timings.get(k)) for k in TIMING_KEYS}
        if not turn.heard:
            turn.failure, turn.error = NOT_HEARD, "nothing was heard"
        elif turn.timings.get("voice_to_voice_ms") is None:
            turn.failure, turn.error = MISSING_TIMINGS, "no voice-to-voice figure"

    async def caller(self, result: CallerResult, opened: list[ScriptedCaller | None]) -> None:
        caller = await self.open(result)
        opened[result.index] = caller
        if caller is None:
            return
        await self.ready.wait()
        try:
            if self.plan["mode"] == "load":
                await self.speak_turns(caller, result)
            else:
                await self.release.wait()
        finally:
            try:
                async with self.gate:
                    await asyncio.wait_for(caller.request("hang_up", {}), REQUEST_TIMEOUT_S)
            except Exception:  # hanging up is best effort; the idle timeout ends it anyway
                pass
            await _quiet_close(caller)

    async def run(self) -> dict[str, Any]:
        opened: list[ScriptedCaller | None] = [None] * len(self.results)
        began = time.monotonic()
        tasks = [asyncio.create_task(self.caller(r, opened)) for r in self.results]
        progress = asyncio.create_task(self._progress(began))
        login_timeout = float(self.plan.get("login_timeout_s", 60))
        while time.monotonic() - began < login_timeout:
            if all(r.login_ms is not None or r.error for r in self.results):
                break
            await asyncio.sleep(0.05)
        logged_in = sum(r.login_ms is not None for r in self.results)
        login_s = round(time.monotonic() - began, 2)
        _say(f"{logged_in} of {len(self.results)} callers logged in after {login_s:.1f} s")
        self.measured_from = time.monotonic()
        _say("@@ready")
        self.ready.set()
        if self.plan["mode"] == "idle":
            await asyncio.sleep(float(self.plan.get("hold_s", 10)))
            live = sum(1 for c in opened if c is not None and _live(c))
            _say(f"{live} idle conversations still connected and not ended; hanging up")
            self.still_open = live
            _say("@@release")
            self.release.set()
        # Bounded: turns in flight finish and everyone hangs up, or is cut off.
        finish = float(self.plan.get("finish_timeout_s", 60))
        if self.plan["mode"] == "load":
            finish += float(self.plan["duration_s"]) + 1.5 * float(self.plan["interval_s"])
        _done, pending = await asyncio.wait(tasks, timeout=finish)
        for task in pending:
            task.cancel()
        if pending:
            _say(f"{len(pending)} callers did not finish within {finish:.0f} s; cut off")
            await asyncio.gather(*pending, return_exceptions=True)
        progress.cancel()
        return {
            "mode": self.plan["mode"],
            "logged_in": logged_in,
            "still_open": self.still_open,
            "login_s": login_s,
            "measured_s": round(time.monotonic() - self.measured_from, 2),
            "callers": [asdict(r) for r in self.results],
        }

    async def _progress(self, began: float) -> None:
        while True:
            await asyncio.sleep(10)
            turns = [t for r in self.results for t in r.turns]
            if self.plan["mode"] != "load" or not self.ready.is_set():
                done = sum(r.login_ms is not None for r in self.results)
                _say(f"  {time.monotonic() - began:.0f} s: {done} logged in")
                continue
            v2v = [
                t.timings.get("voice_to_voice_ms")
                for t in turns
                if t.failure is None and t.timings.get("voice_to_voice_ms") is not None
            ]
            failed = sum(t.failure is not None for t in turns)
            latest = f", latest v2v {v2v[-1]:.0f} ms" if v2v else ""
            _say(
                f"  {time.monotonic() - self.measured_from:.0f} s: {len(turns)} turns,"
                f" {failed} failed{latest}"
            )


def _live(caller: ScriptedCaller) -> bool:
    """Connected, and the conversation not ended (e.g. by its idle timeout)."""
    last = caller.statuses[-1] if caller.statuses else {}
    return caller.sio.connected and last.get("state") != "ended"


async def _quiet_close(caller: ScriptedCaller) -> None:
    try:
        await asyncio.wait_for(caller.close(), 5)
    except Exception:
        pass


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m convonet.bench.callers PLAN.json RESULT.json", file=sys.stderr)
        return 2
    plan = json.loads(Path(argv[0]).read_text())
    raise_fd_limit()
    result = asyncio.run(_Run(plan).run())
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
