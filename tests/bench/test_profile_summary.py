"""The profile summary docs/benchmarks.md quotes: samples are put in the innermost
component, waiting threads are left out, ``--only`` filters."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.profile_summary import render, summarize


def _profile(path: Path) -> Path:
    frames = [
        {"name": "run", "file": "/x/src/visitmail/delivery/scheduler.py", "line": 1},
        {"name": "execute", "file": "/v/site-packages/sqlalchemy/orm/session.py", "line": 2},
        {"name": "write", "file": "/py/asyncio/selector_events.py", "line": 3},
        {
            "name": "_connection_worker_thread",
            "file": "/v/site-packages/aiosqlite/core.py",
            "line": 59,
        },
        {
            "name": "_connection_worker_thread",
            "file": "/v/site-packages/aiosqlite/core.py",
            "line": 63,
        },
    ]
    document = {
        "shared": {"frames": frames},
        "profiles": [
            # main thread: 3 samples in SQLAlchemy under visitmail, 1 in a socket write
            {"samples": [[0, 1], [0, 1], [0, 1], [0, 2]], "weights": [0.01] * 4},
            # aiosqlite thread: 5 idle (waiting for a request), 1 executing
            {"samples": [[3]] * 5 + [[4]], "weights": [0.01] * 6},
        ],
    }
    target = path / "p.json"
    target.write_text(json.dumps(document))
    return target


def test_samples_go_to_the_innermost_component_and_idle_threads_are_left_out(
    tmp_path: Path,
) -> None:
    summary = summarize([_profile(tmp_path)])
    assert round(summary.total, 2) == 0.05  # 4 main-thread samples + 1 executing, not the 5 idle
    shares = {k: round(v / summary.total, 2) for k, v in summary.by_component.items()}
    assert shares == {
        "SQLAlchemy (build, compile, cache keys, results)": 0.6,
        "asyncio (event loop, socket syscalls)": 0.2,
        "SQLite (C, in aiosqlite's threads)": 0.2,
    }
    assert "| SQLAlchemy (build, compile, cache keys, results) | 60 % |" in render(summary)


def test_only_keeps_samples_with_a_matching_frame(tmp_path: Path) -> None:
    summary = summarize([_profile(tmp_path)], only=re.compile("selector_events"))
    assert list(summary.by_component) == ["asyncio (event loop, socket syscalls)"]
