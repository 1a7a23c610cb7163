"""`convonet bench ...`: the bench commands, one typer app that `convonet.cli` mounts.

A new bench is one more `@app.command()` here. Commands get the loaded settings from the
context (`settings_from(ctx)`) and end with `raise typer.Exit(code)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from convonet.settings import Settings, load_settings

app = typer.Typer(
    name="bench",
    help="Measure a running Convonet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def bench() -> None:
    """Measure a running Convonet (start one with `make run`)."""


def settings_from(ctx: typer.Context) -> Settings:
    """The settings `convonet` loaded, or this process's own when run on its own."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else load_settings()


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@app.command(
    help=(
        "Voice-to-voice latency through the public socket and through the engines alone.\n\n"
        "Speaks eSpeak NG commands into N real-time calls, then the same utterances straight"
        " into the same engines in this process, and prints p50/p95/p99 of each part for"
        " both paths and of the system's overhead (full minus direct, paired per utterance"
        " and voice)."
    )
)
def latency(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="API base URL (default: the settings' API host and port)")
    ] = None,
    calls: Annotated[int, typer.Option(min=1, help="calls on the full path")] = 6,
    turns: Annotated[int, typer.Option(min=1, help="utterances spoken per call")] = 4,
    pin: Annotated[str, typer.Option(help="the caller's PIN (a seeded demo user)")] = "1234",
    voices: Annotated[
        str, typer.Option(help="eSpeak NG voices, comma-separated (e.g. en-us,en-gb,en-us+f3)")
    ] = "en-us,en-gb,en-us+f3",
    utterances: Annotated[
        int, typer.Option(min=1, help="how many of the bench's fixed commands to use")
    ] = 8,
    speed: Annotated[
        float,
        typer.Option(min=0.1, max=2.0, help="audio pacing: 1.0 is real time, like a microphone"),
    ] = 1.0,
    warmup: Annotated[
        int, typer.Option(min=0, help="uncounted turns on each path before measuring")
    ] = 1,
    timeout: Annotated[
        float, typer.Option(min=10, help="stop starting new turns after this many seconds")
    ] = 900.0,
    keep_data: Annotated[
        bool,
        typer.Option(
            "--keep-data",
            help="keep the todos, reminders and events the bench's turns created"
            " (removed by default, so runs stay comparable)",
        ),
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write every figure and raw sample here")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="write a PNG of the distributions and breakdown")
    ] = None,
) -> None:
    from convonet.bench.latency import LatencyOptions, run_latency
    from convonet.bench.utterances import COMMANDS

    settings = settings_from(ctx)
    chosen_voices = _split(voices)
    if not chosen_voices:
        raise typer.BadParameter("name at least one voice", param_hint="--voices")
    options = LatencyOptions(
        url=url or f"http://{settings.api_host}:{settings.api_port}",
        pin=pin,
        calls=calls,
        turns=turns,
        voices=chosen_voices,
        commands=COMMANDS[:utterances],
        speed=speed,
        warmup=warmup,
        timeout_s=timeout,
        keep_data=keep_data,
        json_path=json_path,
        plot_path=plot,
    )
    code = asyncio.run(run_latency(settings, options, out=_say))
    raise typer.Exit(code)


@app.command(
    help=(
        "Many simultaneous callers: voice-to-voice under load, failed turns, the CPU and"
        " memory of the system's processes and Temporal history per turn.\n\n"
        "N callers run in a separate process, each logging in with a demo PIN (round-robin)"
        " and speaking one of the latency bench's commands every few seconds, in real time."
        " --ramp steps N up (1, 2, 5, 10, 20, 35, 50, ...) until voice-to-voice p95 passes"
        " the target or a turn fails, and prints the largest N that held. --idle N opens N"
        " logged-in conversations that stay silent and reports the system's memory with them."
    )
)
def load(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="API base URL (default: the settings' API host and port)")
    ] = None,
    callers: Annotated[int, typer.Option(min=1, help="simultaneous callers")] = 10,
    duration: Annotated[
        float | None,
        typer.Option(min=1, help="seconds of turns per run (default 60; with --ramp, 30 per step)"),
    ] = None,
    ramp: Annotated[
        bool, typer.Option("--ramp", help="step the callers up until latency or turns fail")
    ] = False,
    max_callers: Annotated[int, typer.Option(min=1, help="--ramp: the most callers tried")] = 200,
    max_time: Annotated[
        float, typer.Option(min=10, help="--ramp: start no step past this many seconds")
    ] = 900.0,
    target_p95: Annotated[
        float, typer.Option(min=1, help="--ramp: voice-to-voice p95 (ms) a step must keep")
    ] = 1000.0,
    idle: Annotated[
        int, typer.Option(min=0, help="open this many idle logged-in conversations instead")
    ] = 0,
    hold: Annotated[float, typer.Option(min=1, help="--idle: seconds to hold them open")] = 10.0,
    login_concurrency: Annotated[
        int, typer.Option(min=1, help="callers connecting and logging in at the same time")
    ] = 20,
    interval: Annotated[
        float, typer.Option(min=0.5, help="mean pause between a caller's turns (jittered ±50%)")
    ] = 3.0,
    pins: Annotated[str, typer.Option(help="demo PINs, comma-separated, used in turn")] = (
        "1234,2345,3456"
    ),
    voices: Annotated[
        str, typer.Option(help="eSpeak NG voices, comma-separated")
    ] = "en-us,en-gb,en-us+f3",
    keep_data: Annotated[
        bool,
        typer.Option("--keep-data", help="keep the todos, reminders and events turns created"),
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write every figure and raw sample here")
    ] = None,
) -> None:
    from convonet.bench.load import LoadOptions, run_load

    settings = settings_from(ctx)
    chosen_pins, chosen_voices = _split(pins), _split(voices)
    if not chosen_pins:
        raise typer.BadParameter("name at least one PIN", param_hint="--pins")
    if not chosen_voices:
        raise typer.BadParameter("name at least one voice", param_hint="--voices")
    options = LoadOptions(
        url=url or f"http://{settings.api_host}:{settings.api_port}",
        callers=callers,
        duration_s=duration if duration is not None else (30.0 if ramp else 60.0),
        interval_s=interval,
        pins=chosen_pins,
        voices=chosen_voices,
        ramp=ramp,
        max_callers=max_callers,
        max_time_s=max_time,
        target_p95_ms=target_p95,
        idle=idle,
        hold_s=hold,
        login_concurrency=login_concurrency,
        keep_data=keep_data,
        json_path=json_path,
    )
    _quiet_libraries()
    code = asyncio.run(run_load(settings, options, out=_say))
    raise typer.Exit(code)


@app.command(
    help=(
        "Audio delay and jitter through a transfer's bridge, caller to agent and back.\n\n"
        "builtin: against the running system, a scripted caller asks for an agent and the"
        " demo agent (dana) answers on the dashboard socket. twilio: the bench runs API and"
        " worker in its own process, configured for Twilio against a local Twilio peer,"
        " with the same database, Redis and Temporal. Both sides stream numbered 20 ms frames"
        " in real time; per direction: delay p50/p95/p99, jitter and frames lost."
    )
)
def bridge(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="API base URL (default: the settings' API host and port)")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="builtin (dashboard agent), twilio (media stream) or both")
    ] = "both",
    seconds: Annotated[
        float, typer.Option(min=1, max=600, help="seconds of audio each way")
    ] = 10.0,
    pin: Annotated[str, typer.Option(help="the caller's PIN (a seeded demo user)")] = "1234",
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write every figure here")
    ] = None,
) -> None:
    from convonet.bench.bridge import MODES, BridgeOptions, run_bridge

    if mode not in (*MODES, "both"):
        raise typer.BadParameter("builtin, twilio or both", param_hint="--mode")
    settings = settings_from(ctx)
    options = BridgeOptions(
        url=url or f"http://{settings.api_host}:{settings.api_port}",
        mode=mode,
        seconds=seconds,
        pin=pin,
        json_path=json_path,
    )
    _quiet_libraries()
    code = _run_like_the_api(run_bridge(settings, options, out=_say))
    raise typer.Exit(code)


# Their per-request INFO lines would bury the bench's own output.
NOISY_LOGGERS = ("httpx", "twilio", "temporalio", "uvicorn", "convonet.api", "convonet.worker")


def _quiet_libraries() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _run_like_the_api(main: Coroutine[Any, Any, int]) -> int:
    """Runs on uvloop when installed, as `convonet api` does (uvicorn's loop="auto"): the
    Twilio mode hosts the API in this process, and on the stock asyncio loop its socket
    sends to a client in the same process lag by about a frame (~17 ms), which the real
    API does not."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _say(line: str) -> None:
    print(line, flush=True)


def run(argv: list[str], settings: Settings | None = None) -> int:
    """Runs `convonet bench ARGV...`; the exit code."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="convonet bench", obj=settings, standalone_mode=True)
    except SystemExit as stop:
        if stop.code is None:
            return 0
        return stop.code if isinstance(stop.code, int) else 1
    return 0
