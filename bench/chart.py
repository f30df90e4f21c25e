"""The suite's chart: one PNG, one panel per scenario (per scenario and unit when a
scenario reports in several units), a bar per peer / database / metric, its ratio to the
scenario's baseline written above it. Drawn with matplotlib's Agg backend (no display)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from bench.scenarios.base import Measurement, ScenarioResult

_HATCH = {"postgresql": "//"}  # SQLite plain, PostgreSQL hatched
_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3")


class ChartUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _panels(
    results: Sequence[ScenarioResult],
) -> list[tuple[str, str | None, list[Measurement], str]]:
    """``(title, unit, measurements, message)``: a panel per scenario and unit; a scenario
    with nothing to draw gets one panel with its status as the message."""
    panels: list[tuple[str, str | None, list[Measurement], str]] = []
    for result in results:
        drawn = [m for m in result.measurements if m.value is not None]
        units = list(dict.fromkeys(m.unit for m in drawn))
        if not units:
            message = f"{result.status}: {result.reason or 'nothing measured'}"
            panels.append((result.scenario, None, [], message))
            continue
        for unit in units:
            title = result.scenario if len(units) == 1 else f"{result.scenario} ({unit})"
            panels.append((title, unit, [m for m in drawn if m.unit == unit], ""))
    return panels


def _label(m: Measurement, many_metrics: bool) -> str:
    parts = [m.peer]
    if m.database:
        parts.append(m.database)
    if many_metrics:
        parts.append(m.metric)
    return "\n".join(parts)


def draw_chart(results: Sequence[ScenarioResult], path: Path, *, title: str = "") -> None:
    """Write the chart to ``path`` (PNG). Raises :class:`ChartUnavailable`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ChartUnavailable("matplotlib is not installed (pip install -e '.[dev]')") from e

    panels = _panels(results)
    columns = 2 if len(panels) > 1 else 1
    rows = max(1, math.ceil(len(panels) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 3.6 * rows), squeeze=False)
    peers = list(dict.fromkeys(m.peer for _, _, ms, _ in panels for m in ms))
    color = {p: _COLORS[i % len(_COLORS)] for i, p in enumerate(peers)}
    for index, (panel_title, unit, measurements, message) in enumerate(panels):
        ax = axes[index // columns][index % columns]
        ax.set_title(panel_title, fontsize=11, loc="left")
        if not measurements:
            ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9)
            ax.set_axis_off()
            continue
        many_metrics = len({m.metric for m in measurements}) > 1
        labels = [_label(m, many_metrics) for m in measurements]
        values = [m.value or 0.0 for m in measurements]
        bars = ax.bar(
            range(len(values)),
            values,
            color=[color[m.peer] for m in measurements],
            hatch=[_HATCH.get(m.database or "", "") for m in measurements],
            edgecolor="white",
        )
        ax.set_xticks(range(len(values)), labels, fontsize=8)
        better = "higher" if measurements[0].better == "higher" else "lower"
        ax.set_ylabel(f"{unit} ({better} is better)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        top = max(values) if values else 1.0
        ax.set_ylim(0, top * 1.2 or 1.0)
        for bar, m in zip(bars, measurements, strict=True):
            text = f"{m.value:,.0f}" if (m.value or 0) >= 10 else f"{m.value:.2f}"
            if m.ratio is not None:
                text += f"\n{m.ratio:.2f}x"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
