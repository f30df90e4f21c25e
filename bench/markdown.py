"""``python -m bench.markdown test-artifacts/bench.json``: the results of a suite run as
Markdown (the machine, one table of every figure, one of the targets), for the "Latest
results" section of docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import number


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "—"


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    options = report["options"]
    lines = [
        f"Machine: {m['cpu_count']} CPUs ({m['machine']}), {m['platform']}, Python "
        f"{m['python']}, Node.js {m['node']}. Run: size {options['size']}, databases "
        f"{', '.join(options['databases'])}, {options['repeat']} repeat(s), median shown.",
        "",
        "| scenario | peer | database | metric | value | unit | ratio |",
        "|---|---|---|---|---:|---|---:|",
    ]
    for s in report["scenarios"]:
        if not s["measurements"]:
            lines.append(f"| {s['scenario']} | {s['status']}: {s['reason'] or '—'} | | | | | |")
        for x in s["measurements"]:
            value = number(x["value"]) if x["value"] is not None else "—"
            lines.append(
                f"| {s['scenario']} | {x['peer']} | {x['database'] or '—'} | {x['metric']} | "
                f"{value} | {x['unit']} | {_ratio(x['ratio'])} |"
            )
    lines += ["", "| target | measured | goal | result |", "|---|---:|---:|---|"]
    for t in report["targets"]:
        sign = ">=" if t["better"] == "higher" else "<="
        state = "not judged" if t["met"] is None else ("met" if t["met"] else "**missed**")
        lines.append(
            f"| {t['description']} | {number(t['measured'])} | {sign} {number(t['goal'])} "
            f"| {state} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "test-artifacts/bench.json")
    sys.stdout.write(render(json.loads(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
