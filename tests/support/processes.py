"""Run the real ``visitmail`` command in a subprocess with a controlled environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

VISITMAIL = [sys.executable, "-m", "visitmail.cli"]


def cli_env(tmp: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISITMAIL_")}
    env["VISITMAIL_VAR_DIR"] = str(tmp / "var")
    if database_url:
        env["VISITMAIL_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VISITMAIL, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,  # no terminal: a command never waits for a prompt's answer
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
