"""The suite's tables: one per scenario (peer, database, metric, value, unit, ratio), then
every target of issue 9 as met, missed or not judged."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from bench.scenarios.base import ScenarioResult, Target
from bench.suite import SuiteReport


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _params(params: dict[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if not isinstance(v, (dict, list)) or v}
    return ", ".join(
        f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in shown.items()
    )


def _status(result: ScenarioResult) -> str:
    if result.status == "failed":
        return "[red]FAILED[/red]"
    return result.status


def scenario_table(result: ScenarioResult) -> Table:
    table = Table(
        title=f"{result.scenario}: {_status(result)} ({result.seconds:.0f} s)",
        caption=_params(result.params) or None,
        title_justify="left",
    )
    for column, justify in (
        ("peer", "left"),
        ("database", "left"),
        ("metric", "left"),
        ("value", "right"),
        ("unit", "left"),
        ("ratio", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=column != "peer")  # type: ignore[arg-type]
    if not result.measurements:
        table.add_row(
            f"({result.status}: {result.reason or 'nothing measured'})", "", "", "", "", ""
        )
    for m in result.measurements:
        table.add_row(
            m.peer,
            m.database or "—",
            m.metric,
            number(m.value),
            m.unit,
            f"{m.ratio:.2f}x" if m.ratio is not None else "—",
        )
    return table


def scenario_notes(result: ScenarioResult) -> list[str]:
    lines = [f"  {note}" for note in result.notes]
    if result.reason and result.measurements:
        lines.insert(0, f"  {result.status}: {result.reason}")
    for m in result.measurements:
        if m.note:
            lines.append(f"  {m.peer} ({m.database or '-'}) {m.metric}: {m.note}")
    return lines


def _state(target: Target) -> str:
    if target.met is None:
        return "not judged"
    return "[green]met[/green]" if target.met else "[red]missed[/red]"


def targets_table(report: SuiteReport) -> Table:
    table = Table(
        title="issue 9 targets",
        caption="judged on full runs only (smoke runs prove the scenario works)",
        title_justify="left",
    )
    table.add_column("scenario", no_wrap=True)
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("goal", justify="right")
    table.add_column("result", no_wrap=True)
    for result in report.results:
        if not result.targets:
            table.add_row(result.scenario, f"({result.status}: {result.reason or '-'})", "", "", "")
        for target in result.targets:
            sign = ">=" if target.better == "higher" else "<="
            table.add_row(
                result.scenario,
                target.description,
                number(target.measured),
                f"{sign} {number(target.goal)}",
                _state(target),
            )
    return table
