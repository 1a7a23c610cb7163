"""`--plot`: one PNG with the distribution of voice-to-voice on both paths and the median
breakdown of a turn into its parts.

Drawn with matplotlib's object API on an Agg canvas: no display, no global pyplot state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convonet.bench import report

# The stacked parts of a turn as the caller lives it: the end-of-speech wait, then the
# parts of voice-to-voice.
STACK = (report.END_OF_SPEECH, report.STT, report.LLM, report.TTS, report.OTHER)
COLOURS = {
    report.END_OF_SPEECH: "#bdbdbd",
    report.STT: "#4c78a8",
    report.LLM: "#f58518",
    report.TTS: "#54a24b",
    report.OTHER: "#b279a2",
}
PATH_COLOURS = {report.FULL: "#4c78a8", report.DIRECT: "#f58518"}


def _values(figures: dict[str, Any], path: str, part: str) -> list[float]:
    samples = figures["paths"][path]["samples"]
    return [float(v) for s in samples if (v := s["timings"].get(part)) is not None]


def write_plot(figures: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5.5), layout="constrained")
    spread, stack = figure.subplots(1, 2, width_ratios=(1, 1.2))
    paths = report.PATHS

    # Left: voice-to-voice distributions, each sample drawn over its path's box.
    data = [_values(figures, p, report.V2V) for p in paths]
    labels = [f"{p}\n(n={len(d)})" for p, d in zip(paths, data, strict=True)]
    shown = [d if d else [float("nan")] for d in data]
    boxes = spread.boxplot(shown, patch_artist=True, widths=0.5, showfliers=False)
    spread.set_xticks(range(1, len(paths) + 1), labels)
    for patch, name in zip(boxes["boxes"], paths, strict=True):
        patch.set_facecolor(PATH_COLOURS[name])
        patch.set_alpha(0.35)
    for position, values in enumerate(data, start=1):
        jitter = [position + ((i % 7) - 3) * 0.03 for i in range(len(values))]
        spread.scatter(jitter, values, s=12, color="black", alpha=0.6, zorder=3)
    overhead = figures["overhead"]["summary"].get(report.V2V, {})
    title = "Voice-to-voice (end of speech → first reply audio)"
    if overhead.get("p50") is not None:
        title += f"\noverhead full − direct: p50 {overhead['p50']:.0f} ms,"
        title += f" p95 {overhead['p95']:.0f} ms (n={overhead['n']} pairs)"
    spread.set_title(title, fontsize=10)
    spread.set_ylabel("ms")
    spread.set_ylim(bottom=0)
    spread.grid(axis="y", alpha=0.3)

    # Right: median of each part, stacked; the total of the voice-to-voice parts is marked.
    top = 0.0
    for index, name in enumerate(paths):
        summary = figures["paths"][name]["summary"]
        bottom = 0.0
        for part in STACK:
            value = (summary.get(part) or {}).get("p50") or 0.0
            stack.bar(
                index,
                value,
                bottom=bottom,
                width=0.55,
                color=COLOURS[part],
                label=report.LABELS[part] if index == 0 else None,
                hatch="//" if part == report.END_OF_SPEECH else None,
                edgecolor="white",
            )
            if value >= 25:
                stack.text(index, bottom + value / 2, f"{value:.0f}", ha="center", va="center")
            bottom += value
        top = max(top, bottom)
        v2v = (summary.get(report.V2V) or {}).get("p50")
        if v2v is not None:
            stack.text(index, bottom + 10, f"v2v p50 {v2v:.0f} ms", ha="center", va="bottom")
    stack.set_xticks(range(len(paths)), list(paths))
    stack.set_xlim(-0.7, len(paths) - 0.3)
    stack.set_ylabel("ms (median of each part)")
    stack.set_title("Where a turn's time goes (p50 per part)", fontsize=10)
    stack.set_ylim(0, max(top, 1.0) * 1.12)
    stack.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8)
    stack.grid(axis="y", alpha=0.3)
    engines = figures.get("engines") or {}
    if engines:
        figure.suptitle(
            "convonet bench latency — " + ", ".join(f"{k} {v}" for k, v in engines.items()),
            fontsize=11,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, format="png")
