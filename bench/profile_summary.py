"""Where a process spent its CPU: a py-spy speedscope profile summed by component.

    py-spy record --pid PID -r 100 -f speedscope -o out.json      # while a scenario runs
    python -m bench.profile_summary out.json [more.json ...] [--only REGEX] [--detail PREFIX]

Every sample of every thread is put in the first component (list :data:`COMPONENTS`) that
one of its frames matches, looking from the innermost frame outwards, so a sample inside
SQLAlchemy called from visitmail counts as SQLAlchemy. Samples of threads that only wait
(aiosqlite's request queue, a thread pool's idle workers, ``epoll``) are left out: py-spy
counts a thread blocked in a C lock as active. ``--only`` keeps the samples with a frame
matching REGEX; ``--detail PREFIX`` also lists the innermost functions of the components
whose name starts with PREFIX.

This is how docs/benchmarks.md attributes a missed target: the share of CPU per component
during the timed phase of a scenario (see ``bench/spy_phase.sh``).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPONENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("SQLite (C, in aiosqlite's threads)", re.compile(r"aiosqlite/core\.py|sqlite3")),
    ("asyncpg driver", re.compile(r"asyncpg/")),
    ("report PDF", re.compile(r"fpdf|reportlab|render/pdf|report_pdf")),
    ("templates (Jinja2 sandbox)", re.compile(r"jinja2/|domain/sandbox|render/templates")),
    ("MIME build", re.compile(r"render/mime|/email/|mime_")),
    ("address validation", re.compile(r"email_validator|idna|domain/addresses")),
    ("SQLAlchemy (build, compile, cache keys, results)", re.compile(r"sqlalchemy/")),
    ("pydantic", re.compile(r"pydantic")),
    (
        "HTTP (uvicorn, Starlette, FastAPI, anyio)",
        re.compile(r"uvicorn|h11|httptools|starlette|fastapi|anyio"),
    ),
    ("SMTP session", re.compile(r"adapters/smtp|aiosmtplib")),
    ("logging, metrics", re.compile(r"structlog|logging/|prometheus")),
    ("visitmail's own code", re.compile(r"visitmail/")),
    ("asyncio (event loop, socket syscalls)", re.compile(r"asyncio/|_asynciomodule")),
)
IDLE = re.compile(
    r"aiosqlite/core\.py:59\)|queue\.py|threading\.py|selectors\.py|concurrent/futures/thread\.py"
)


@dataclass
class Summary:
    total: float = 0.0
    by_component: Counter[str] = field(default_factory=Counter)
    detail: Counter[str] = field(default_factory=Counter)


def frame_names(profile: dict[str, Any]) -> list[str]:
    names = []
    for frame in profile["shared"]["frames"]:
        path = str(frame.get("file", "")).split("site-packages/")[-1].split("/src/")[-1]
        names.append(f"{frame['name']} ({path}:{frame.get('line', '')})")
    return names


def component_of(stack: list[int], names: list[str]) -> str:
    for index in reversed(stack):
        for label, pattern in COMPONENTS:
            if pattern.search(names[index]):
                return label
    return "other"


def summarize(
    files: list[Path], only: re.Pattern[str] | None = None, detail: str | None = None
) -> Summary:
    summary = Summary()
    for path in files:
        profile = json.loads(path.read_text())
        names = frame_names(profile)
        for thread in profile["profiles"]:
            for stack, weight in zip(thread["samples"], thread["weights"], strict=True):
                if not stack or IDLE.search(names[stack[-1]]):
                    continue
                if only is not None and not any(only.search(names[i]) for i in stack):
                    continue
                component = component_of(stack, names)
                summary.total += weight
                summary.by_component[component] += weight
                if detail is not None and component.startswith(detail):
                    summary.detail[names[stack[-1]]] += weight
    return summary


def render(summary: Summary, top: int = 20) -> str:
    if not summary.total:
        return "no active samples"
    lines = [f"{summary.total:.1f} s of CPU samples (all threads)", "| component | share |"]
    lines.append("|---|---:|")
    for label, weight in summary.by_component.most_common():
        lines.append(f"| {label} | {100 * weight / summary.total:.0f} % |")
    if summary.detail:
        lines.append("")
        for name, weight in summary.detail.most_common(top):
            lines.append(f"{100 * weight / summary.total:5.1f} % {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--only", type=re.compile, default=None)
    parser.add_argument("--detail", default=None)
    args = parser.parse_args(argv)
    print(render(summarize(args.files, args.only, args.detail)))


if __name__ == "__main__":
    main()
