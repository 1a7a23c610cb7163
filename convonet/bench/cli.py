"""`convonet bench ...`: the bench commands, one typer app that `convonet.cli` mounts.

A new bench is one more `@app.command()` here. Commands get the loaded settings from the
context (`settings_from(ctx)`) and end with `raise typer.Exit(code)`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

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
