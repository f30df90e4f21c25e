"""A throwaway PostgreSQL cluster that a test may stop and restart.

The shared server on 5432 serves everybody's tests and must never be restarted; a test
that restarts the database (a fault-injection test) starts its own cluster with the
distribution's ``initdb`` and ``pg_ctl`` in a temporary directory, on a free port of
127.0.0.1, with trust authentication and without fsync (nothing here needs to survive a
power cut). PostgreSQL refuses to run as root: as root, the commands run as the
``postgres`` OS user (``runuser``) in a directory it owns.

Usage::

    cluster = PgCluster.start()      # skips the test if no PostgreSQL binaries exist
    url = cluster.url                # postgresql://postgres@127.0.0.1:PORT/postgres
    cluster.restart()                # pg_ctl restart -m fast: every connection is cut
    cluster.destroy()
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port

OS_USER = "postgres"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``pg_ctl``."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    found = [d for d in found if (d / "initdb").exists()]
    if not found:
        return None
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class PgCluster:
    bindir: Path
    root: Path  # the temporary directory: data/, the socket and the log
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls) -> PgCluster:
        bindir = find_bindir()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        root = Path(tempfile.mkdtemp(prefix="visitmail-pgcluster-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OS_USER)
            os.chown(root, owner.pw_uid, owner.pw_gid)
        cluster = cls(bindir, root, free_port())
        try:
            cluster._run(
                "initdb", "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "--no-sync"
            )
            cluster._ctl("start", "-l", str(cluster.log), "-o", cluster._options())
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def _options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )

    def _run(self, program: str, *args: str) -> None:
        argv = _as_owner([str(self.bindir / program), *args])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}): "
                f"{done.stdout[-1000:]}{done.stderr[-1000:]}\n{log}"
            )

    def _ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data), "-w", "-t", "60", *args)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is terminated, the server shuts down
        cleanly and starts again on the same port; returns once it accepts connections."""
        self._ctl("restart", "-m", "fast", "-l", str(self.log), "-o", self._options())

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            # Already gone: the directory goes anyway.
            with contextlib.suppress(RuntimeError):
                self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
