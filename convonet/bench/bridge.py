"""`convonet bench bridge`: the delay and jitter a transfer's audio bridge adds, each way.

Caller and agent both stream numbered 20 ms frames (`convonet.bench.marker`) in real time
once the transfer is bridged; each receiver reads the number from the samples and takes
delay = arrival - send on the bench's one clock. Per direction: p50/p95/p99 of the delay,
jitter (the standard deviation of the inter-arrival deviation, and RFC 3550's estimate)
and frames lost. The edge's own `bridge_audio_delay_seconds` histograms (its Redis hop
only) are read before and after, and what they gained is reported beside.

- builtin: against the running system at --url. A scripted caller asks for a transfer
  ("transfer me to an agent"), the scripted demo agent (dana) answers on the dashboard
  socket, and the bridge runs between the two sockets.
- twilio: the bench starts the system in its own process (`convonet.bench.inprocess`) with
  Twilio settings pointing at its own Twilio peer (`convonet.bench.twilio_peer`), against
  the same database, Redis and Temporal (on a task queue of its own). The peer answers the
  worker's call, connects the media stream and plays the agent: frames cross the mu-law
  8 kHz leg both ways, as with Twilio, less the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import socketio

from api.protocol import NAMESPACE as CALLER_NAMESPACE
from convonet.agent_client import DEMO_LOGIN, DEMO_PASSWORD, ScriptedAgent
from convonet.bench.latency import BenchAborted, probe
from convonet.bench.marker import (
    FRAME_S,
    Buckets,
    FrameClock,
    bucket_delta,
    delay_stats,
    histogram_summary,
    marked_frame,
    parse_bridge_histogram,
    read_marker,
)
from convonet.call_client import CallFailed, ScriptedCaller
from convonet.settings import Settings
from convonet.speech.audio import SAMPLE_RATE

Print = Callable[[str], None]
MODES = ("builtin", "twilio")
TARGET_P95_MS = 60.0
# Frames sent before measuring: the bridge's two ends settle in (not counted).
WARMUP_S = 0.5
# After the last frame, stragglers get this long to arrive.
DRAIN_S = 0.5
STEP_TIMEOUT_S = 30.0
DIRECTIONS = (("to_agent", "caller → agent"), ("to_caller", "agent → caller"))


@dataclass
class BridgeOptions:
    url: str
    mode: str = "both"
    seconds: float = 10.0
    pin: str = "1234"
    agent_login: str = DEMO_LOGIN
    agent_password: str = DEMO_PASSWORD
    json_path: Path | None = None

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES if self.mode == "both" else (self.mode,)


# --- the exchange of numbered frames --------------------------------------------------------

SendFrame = Callable[[bytes], Awaitable[None]]


async def _pump(send: SendFrame, clock: FrameClock, rate: int, count: int) -> None:
    """Sends `count` numbered frames, one every 20 ms on the loop's clock."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index in range(count):
        frame = marked_frame(index, rate)
        clock.sent(time.perf_counter())
        await send(frame)
        delay = started + (index + 1) * FRAME_S - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def exchange(
    send_caller: SendFrame,
    send_agent: SendFrame,
    agent_rate: int,
    to_agent: FrameClock,
    to_caller: FrameClock,
    seconds: float,
) -> int:
    """Both sides talk at once for the warm-up plus `seconds`; the frames to skip."""
    warmup = round(WARMUP_S / FRAME_S)
    count = warmup + round(seconds / FRAME_S)
    await asyncio.gather(
        _pump(send_caller, to_agent, SAMPLE_RATE, count),
        _pump(send_agent, to_caller, agent_rate, count),
    )
    await asyncio.sleep(DRAIN_S)
    return warmup


def _listen_as_caller(caller: ScriptedCaller, clock: FrameClock) -> SendFrame:
    """Times the agent's frames as the caller gets them; returns how the caller talks."""

    async def on_bridge_audio(data: dict[str, Any]) -> None:
        at = time.perf_counter()
        pcm = data.get("pcm", b"")
        caller.bridge_audio += pcm
        clock.arrived(read_marker(pcm, SAMPLE_RATE), at)

    caller.sio.on("bridge_audio", on_bridge_audio, namespace=CALLER_NAMESPACE)
    seq = 0

    async def send(pcm: bytes) -> None:
        nonlocal seq
        seq += 1
        await caller.sio.emit(
            "audio_frame", {"seq": seq, "rate": SAMPLE_RATE, "pcm": pcm}, namespace=CALLER_NAMESPACE
        )

    return send


async def _ask_for_transfer(caller: ScriptedCaller, pin: str) -> str:
    """Connects, logs in and asks for an agent; the conversation id."""
    try:
        status = await asyncio.wait_for(caller.connect(), STEP_TIMEOUT_S)
        await caller.login(pin)
        reply = await caller.say("transfer me to an agent")
    except (socketio.exceptions.SocketIOError, TimeoutError) as error:
        raise BenchAborted(f"the caller could not get through: {error!r}") from None
    except CallFailed as error:
        raise BenchAborted(f"the caller's login or turn failed: {error}") from None
    if reply.get("state") != "transferring":
        raise BenchAborted(
            f"the assistant did not start a transfer (said {reply.get('assistant')!r})"
        )
    return str(status["conversation_id"])


async def _wait(what: str, waiting: Awaitable[Any], timeout: float = STEP_TIMEOUT_S) -> Any:
    try:
        return await asyncio.wait_for(waiting, timeout)
    except TimeoutError:
        raise BenchAborted(f"{what} did not happen within {timeout:.0f} s") from None


async def _hang_up(caller: ScriptedCaller) -> None:
    with contextlib.suppress(Exception):
        if caller.sio.connected:
            await asyncio.wait_for(caller.request("hang_up", {}), 10)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(caller.close(), 5)


async def _scrape(url: str) -> Buckets:
    try:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            response = await client.get(f"{url.rstrip('/')}/metrics")
        return parse_bridge_histogram(response.text) if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


async def _agent_ready(agent: ScriptedAgent, state: str) -> None:
    """Makes the demo agent ready to take the call (wrap-up or not-ready before)."""
    if state == "ready":
        return
    if state == "on-call":
        raise BenchAborted(
            "the demo agent is on another call; end it on the dashboard (/agent/) and retry"
        )
    ack = await agent.request("set_state", {"state": "ready"})
    if not ack.get("ok"):
        raise BenchAborted(f"the demo agent cannot be made ready: {ack.get('error')}")


def _figures(
    mode: str, to_agent: FrameClock, to_caller: FrameClock, skip: int, edge: Buckets
) -> dict[str, Any]:
    return {
        "mode": mode,
        "warmup_frames": skip,
        "to_agent": delay_stats(to_agent, skip),
        "to_caller": delay_stats(to_caller, skip),
        "edge_histogram": histogram_summary(edge),
    }


# --- built-in mode -------------------------------------------------------------------------


async def run_builtin(options: BridgeOptions, out: Print) -> dict[str, Any]:
    await probe(options.url)
    to_agent, to_caller = FrameClock(), FrameClock()
    agent = ScriptedAgent(
        options.url,
        on_audio=lambda pcm: to_agent.arrived(read_marker(pcm, SAMPLE_RATE), time.perf_counter()),
    )
    caller = ScriptedCaller(options.url)
    send_caller = _listen_as_caller(caller, to_caller)
    before = await _scrape(options.url)
    skip = 0
    try:
        try:
            await agent.login(options.agent_login, options.agent_password)
        except (httpx.HTTPError, socketio.exceptions.SocketIOError) as error:
            raise BenchAborted(f"the demo agent could not log in: {error!r}") from None
        state = (await _wait("the agent's state", agent.wait_for("agent_state")))["state"]
        await _agent_ready(agent, state)
        out("builtin: the caller asks for an agent; dana answers on the dashboard socket")
        conversation_id = await _ask_for_transfer(caller, options.pin)
        # Only this caller's ring: another call may be ringing the same agent.
        ringing = agent.wait_for(
            "ring",
            timeout=STEP_TIMEOUT_S,
            where=lambda e: e["call"].get("conversation_id") == conversation_id,
        )
        ring = (await _wait("the agent's ring", ringing))["call"]
        ack = await agent.request("answer", {"transfer_id": ring["transfer_id"]})
        if not ack.get("ok"):
            raise BenchAborted(f"the agent could not answer: {ack.get('error')}")
        await _wait("bridging", caller.wait_for("transfer", state="bridged"))
        await caller.open_mic()
        await asyncio.sleep(0.3)
        out(f"builtin: bridged; both sides talk for {options.seconds:.0f} s")
        skip = await exchange(
            send_caller, agent.send_frame, SAMPLE_RATE, to_agent, to_caller, options.seconds
        )
        await agent.request("hang_up", {"transfer_id": ring["transfer_id"]})
        await _wait("the end of the call", caller.wait_for("transfer", state="ended"))
        response = await agent.dispose(ring["call_record_id"], "no-action", "convonet bench")
        if response.status_code != 200:
            code = response.status_code
            out(f"builtin: the disposition was refused ({code}); dana stays in wrap-up")
    finally:
        await _hang_up(caller)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(agent.close(), 5)
    after = await _scrape(options.url)
    return _figures("builtin", to_agent, to_caller, skip, bucket_delta(after, before))


# --- Twilio mode ---------------------------------------------------------------------------


def twilio_settings(settings: Settings, peer_url: str, account: str, token: str) -> Settings:
    """The target's settings (database, Redis, Temporal), in Twilio mode against the peer,
    on a task queue of their own."""
    from convonet.bench.inprocess import bench_task_queue

    return settings.model_copy(
        update={
            "twilio_account_sid": account,
            "twilio_auth_token": token,
            "twilio_from_number": "+15550001111",
            "twilio_api_base_url": peer_url,
            "twilio_sip_username": None,
            "twilio_sip_password": None,
            "fusionpbx_domain": "pbx.bench.invalid",
            "fusionpbx_wss_url": None,
            "temporal_task_queue": bench_task_queue(settings),
            "worker_metrics_port": 0,
        }
    )


async def run_twilio(settings: Settings, options: BridgeOptions, out: Print) -> dict[str, Any]:
    from prometheus_client import REGISTRY, generate_latest

    from convonet.bench.inprocess import in_process_system
    from convonet.bench.twilio_peer import TwilioPeer

    to_agent, to_caller = FrameClock(), FrameClock()

    def on_media(pcm8k: bytes) -> None:
        to_agent.arrived(read_marker(pcm8k, 8000), time.perf_counter())

    account, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    out("twilio: starting API and worker in this process, with a local Twilio peer")
    async with TwilioPeer(account, token, on_media) as peer:
        configured = twilio_settings(settings, peer.base_url, account, token)
        async with in_process_system(configured) as system:
            before = parse_bridge_histogram(generate_latest(REGISTRY).decode())
            agent = ScriptedAgent(system.url)
            caller = ScriptedCaller(system.url)
            send_caller = _listen_as_caller(caller, to_caller)
            conversation_id = ""
            transfer_id = ""
            skip, after, twilio = 0, before, {}
            try:
                try:
                    body = await agent.login(
                        options.agent_login, options.agent_password, connect=False
                    )
                except httpx.HTTPError as error:
                    raise BenchAborted(f"the demo agent could not log in: {error!r}") from None
                state = body["agent"]["state"]
                if state != "ready":
                    await agent.connect()
                    await _agent_ready(agent, state)
                    await agent.sio.disconnect()
                out("twilio: the caller asks for an agent; the peer answers the worker's call")
                conversation_id = await _ask_for_transfer(caller, options.pin)
                call = await _wait("the worker's call to Twilio", peer.wait_for_call())
                transfer_id = (call.status_callback or "").rsplit("/", 1)[-1]
                for step, status in (("ringing", peer.ring), ("answering", peer.answer)):
                    code = await status(call)
                    if code != 204:
                        raise BenchAborted(f"our API answered the {step} callback with {code}")
                await _wait("bridging", caller.wait_for("transfer", state="bridged"))
                await caller.open_mic()
                await asyncio.sleep(0.3)
                out(f"twilio: bridged; both sides talk for {options.seconds:.0f} s")

                async def send_agent(pcm8k: bytes) -> None:
                    await peer.send_audio(call, pcm8k)

                skip = await exchange(
                    send_caller, send_agent, 8000, to_agent, to_caller, options.seconds
                )
                after = parse_bridge_histogram(generate_latest(REGISTRY).decode())
                await peer.hang_up(call)
                await _wait("the end of the call", caller.wait_for("transfer", state="ended"))
                await _dispose(system.settings, agent, call.sid, out)
                twilio = {
                    "marks_received": call.marks_received,
                    "marks_echoed": call.marks_echoed,
                    "clears": call.clears,
                    "protocol_errors": call.errors[:10],
                }
            finally:
                await _hang_up(caller)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(agent.close(), 5)
                await _finish_workflows(system.client, conversation_id, transfer_id)
    figures = _figures("twilio", to_agent, to_caller, skip, bucket_delta(after, before))
    return {**figures, "twilio": twilio}


async def _dispose(settings: Settings, agent: ScriptedAgent, call_sid: str, out: Print) -> None:
    from sqlalchemy import select

    from convonet.db.models import CallRecord
    from convonet.db.session import session_scope

    async with session_scope(settings.effective_database_url) as db:
        record_id = await db.scalar(select(CallRecord.id).where(CallRecord.leg_id == call_sid))
    if record_id is None:
        out("twilio: no call record for the call; dana may stay in wrap-up")
        return
    # The call record closes a moment after the call ends.
    for _ in range(20):
        response = await agent.dispose(record_id, "no-action", "convonet bench")
        if response.status_code != 409:
            break
        await asyncio.sleep(0.25)
    if response.status_code != 200:
        out(f"twilio: the disposition was refused ({response.status_code}); dana stays in wrap-up")


async def _finish_workflows(client: Any, conversation_id: str, transfer_id: str) -> None:
    """Waits for the bench's workflows to close (the caller hung up); terminates any still
    running, since no worker will poll their task queue again."""
    from temporalio.client import WorkflowExecutionStatus

    from workflows.conversation.models import workflow_id_for

    ids = [i for i in (transfer_id, conversation_id and workflow_id_for(conversation_id)) if i]
    for workflow_id in ids:
        handle = client.get_workflow_handle(workflow_id)
        for _ in range(40):
            try:
                described = await handle.describe()
            except Exception:
                break
            if described.status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.25)
        else:
            with contextlib.suppress(Exception):
                await handle.terminate(reason="convonet bench bridge finished")


# --- the report ----------------------------------------------------------------------------


def format_mode(figures: dict[str, Any], target_p95_ms: float = TARGET_P95_MS) -> list[str]:
    seconds = figures["to_agent"]["frames_sent"] * FRAME_S
    lines = [
        f"bridge ({figures['mode']}): {seconds:.0f} s of 20 ms frames each way"
        f" (after {figures['warmup_frames']} settling frames)",
        f"{'ms':<16}{'sent':>6}{'recvd':>7}{'lost':>6}{'p50':>7}{'p95':>7}{'p99':>7}"
        f"{'max':>7}{'jitter':>8}{'rfc3550':>9}",
    ]
    for key, label in DIRECTIONS:
        stats = figures[key]
        delay = stats["delay_ms"]
        cells = [delay["p50"], delay["p95"], delay["p99"], delay["max"]]
        lines.append(
            f"{label:<16}{stats['frames_sent']:>6}{stats['frames_received']:>7}"
            f"{stats['frames_lost']:>6}"
            + "".join(f"{_ms(v):>7}" for v in cells)
            + f"{_ms(stats['jitter_ms']):>8}{_ms(stats['jitter_rfc3550_ms']):>9}"
        )
    edge = figures.get("edge_histogram") or {}
    if edge:
        parts = [
            f"{direction} {entry['frames']} frames, p50 {_ms(entry['p50_ms'])}"
            f" p95 {_ms(entry['p95_ms'])} ms"
            for direction, entry in edge.items()
        ]
        lines.append("edge's bridge_audio_delay_seconds (Redis hop only): " + "; ".join(parts))
    if "twilio" in figures:
        t = figures["twilio"]
        lines.append(
            f"Twilio stream: {t['marks_received']} marks, {t['marks_echoed']} echoed,"
            f" {t['clears']} clears, {len(t['protocol_errors'])} protocol errors"
        )
    verdicts = []
    for key, label in DIRECTIONS:
        p95 = figures[key]["delay_ms"]["p95"]
        ok = p95 is not None and p95 <= target_p95_ms
        verdicts.append(f"{label} {'met' if ok else 'NOT met'}")
    lines.append(f"target (added delay p95 ≤ {target_p95_ms:.0f} ms): " + ", ".join(verdicts))
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


async def run_bridge(settings: Settings, options: BridgeOptions, out: Print = print) -> int:
    started_at = datetime.now(UTC)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for mode in options.modes:
        try:
            if mode == "builtin":
                results[mode] = await run_builtin(options, out)
            else:
                results[mode] = await run_twilio(settings, options, out)
        except BenchAborted as error:
            errors[mode] = str(error)
            print(f"bench bridge ({mode}): {error}", file=sys.stderr, flush=True)
            continue
        out("")
        for line in format_mode(results[mode]):
            out(line)
        out("")
    figures = {
        "bench": "bridge",
        "url": options.url,
        "started_at": started_at.isoformat(),
        "seconds": options.seconds,
        "target_p95_ms": TARGET_P95_MS,
        "modes": results,
        "errors": errors,
    }
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(figures, indent=2) + "\n")
        out(f"figures written to {options.json_path}")
    if errors:
        return 2 if not results else 1
    received = all(r[k]["frames_received"] > 0 for r in results.values() for k, _ in DIRECTIONS)
    return 0 if received else 1
