"""Shared by the ``delivery`` and ``relay`` scenarios: run peers side by side with
``bench.run.run_bench`` and turn its report into :class:`Measurement` s.

The visitmail peer is run once per database asked for, in the same interleaved repeats as
the others (``OnDatabase``), so its ratio to Nodemailer on each database comes from the
same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.databases import DatabaseKind
from bench.peers.base import Peer
from bench.peers.registry import OnDatabase, make_peers
from bench.run import BenchConfig, BenchReport, PeerReport, run_bench
from bench.scenarios.base import Measurement, Progress, Status


def build_peers(names: Sequence[str], databases: Sequence[DatabaseKind]) -> list[Peer]:
    """Peers by name; the ones that need a database once per database, pinned to it."""
    peers: list[Peer] = []
    for peer in make_peers(list(names)):
        if peer.needs_database:
            peers.extend(OnDatabase(peer, kind) for kind in databases)
        else:
            peers.append(peer)
    return peers


def split_name(name: str) -> tuple[str, DatabaseKind | None]:
    """``"visitmail (sqlite)"`` -> ``("visitmail", "sqlite")``."""
    for kind in ("sqlite", "postgresql"):
        suffix = f" ({kind})"
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


def throughput(report: PeerReport) -> Measurement:
    """The peer's median msgs/s and its ratio to Nodemailer (None when it did not run)."""
    peer, database = split_name(report.peer)
    samples = tuple(report.messages / s for s in report.ok_seconds if s > 0)
    note = "" if report.status == "ok" else f"{report.status}: {report.reason}"
    peaks = {r.peak_connections for r in report.runs if r.peak_connections is not None}
    if peaks:
        note = (
            (note + "; " if note else "")
            + "connections seen by the relay: "
            + ", ".join(str(p) for p in sorted(peaks))
        )
    return Measurement(
        peer=peer,
        metric="throughput",
        value=report.msgs_per_second if report.status == "ok" else None,
        unit="msgs/s",
        database=database,
        ratio=report.ratio_vs_nodemailer if report.status == "ok" else None,
        samples=samples,
        note=note,
    )


def status_of(report: BenchReport) -> Status:
    if report.failed:
        return "failed"
    if all(r.status == "n/a" for r in report.results):
        return "n/a"
    return "ok"


async def run_peers(
    config: BenchConfig, names: Sequence[str], databases: Sequence[DatabaseKind], progress: Progress
) -> tuple[BenchReport, list[Measurement], list[str]]:
    """Run the peers; return the report, one throughput measurement per peer (and
    database), and a note per peer that did not run or failed."""
    report = await run_bench(config, build_peers(names, databases), progress=progress)
    measurements = [throughput(r) for r in report.results]
    notes = [f"{r.peer}: {r.status}: {r.reason}" for r in report.results if r.status != "ok"]
    return report, measurements, notes


def find(
    measurements: Sequence[Measurement], peer: str, database: DatabaseKind | None = None
) -> Measurement | None:
    return next(
        (m for m in measurements if m.peer == peer and m.database == database),
        None,
    )


def params_of(report: BenchReport) -> dict[str, Any]:
    return dict(report.params)
