"""The benchmark harness itself (bench/): it runs real peers against a real sink, reports
unavailable peers as n/a, and never reports a run that lost or duplicated messages as a
result. Small and quick: 50 messages, one repeat; no timing is asserted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from aiosmtplib import SMTP

from bench.cli import main, render_notes
from bench.peers.aiosmtplib_raw import AiosmtplibRawPeer
from bench.peers.base import Peer, PeerResult, PeerUnavailable, RunContext
from bench.run import BenchConfig, run_bench
from bench.sink import find_smtp_sink, start_sink
from bench.workload import BenchMessage, Workload, build_messages

pytestmark = pytest.mark.xdist_group("bench")

N = 50


def quick(**overrides: object) -> BenchConfig:
    values: dict[str, object] = {"messages": N, "connections": 2, "repeat": 1, "sink": "smtp-sink"}
    values.update(overrides)
    return BenchConfig(**values)  # type: ignore[arg-type]


async def send_all(ctx: RunContext, messages: list[BenchMessage]) -> None:
    async with SMTP(hostname=ctx.sink_host, port=ctx.sink_port, start_tls=False) as smtp:
        for m in messages:
            await smtp.sendmail(m.sender, [m.recipient], m.raw)


class UnavailablePeer:
    """Cannot run on this machine, says so in prepare()."""

    name = "missing-tool"
    needs_database = False

    async def prepare(self, workload: Workload) -> Mapping[str, str]:
        raise PeerUnavailable("the missing tool is not installed")

    async def run(self, ctx: RunContext) -> PeerResult:
        raise AssertionError("an unavailable peer must not run")


class NotBuiltPeer:
    """Finds out only when it runs, like the visitmail peer before its engine exists."""

    name = "not-built"
    needs_database = True

    async def prepare(self, workload: Workload) -> Mapping[str, str]:
        return {}

    async def run(self, ctx: RunContext) -> PeerResult:
        assert ctx.database_url is not None and ctx.database_url.startswith("sqlite:///")
        raise PeerUnavailable("the engine is not built yet")


class LossyPeer:
    """Sends all but five messages, yet claims every one was accepted."""

    name = "lossy"
    needs_database = False

    async def prepare(self, workload: Workload) -> Mapping[str, str]:
        return {}

    async def run(self, ctx: RunContext) -> PeerResult:
        await send_all(ctx, list(ctx.workload.messages)[:-5])
        return PeerResult(sent=ctx.workload.n, seconds=0.001)


class DuplicatingPeer:
    """Sends the first message twice and the last one never: the count still adds up."""

    name = "duplicating"
    needs_database = False

    async def prepare(self, workload: Workload) -> Mapping[str, str]:
        return {}

    async def run(self, ctx: RunContext) -> PeerResult:
        messages = list(ctx.workload.messages)
        await send_all(ctx, [messages[0], *messages[:-1]])
        return PeerResult(sent=ctx.workload.n, seconds=0.001)


def test_smtp_sink_is_installed() -> None:
    # The harness's sink; `make system-deps` installs it (Debian package postfix).
    assert find_smtp_sink() is not None


def test_cli_runs_real_peers_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    code = main(
        [
            "--messages",
            str(N),
            "--connections",
            "2",
            "--repeat",
            "1",
            "--peers",
            "aiosmtplib-raw,nodemailer",
            "--sink",
            "smtp-sink",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report) == {"machine", "params", "results"}
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["python"]
    assert report["machine"]["node"].startswith("v")
    assert report["params"] | {"messages": N, "connections": 2, "repeat": 1} == report["params"]
    assert report["params"]["sink"] == "smtp-sink"
    assert report["params"]["mean_message_bytes"] > 4000
    by_peer = {r["peer"]: r for r in report["results"]}
    assert list(by_peer) == ["aiosmtplib-raw", "nodemailer"]
    for result in by_peer.values():
        assert result["status"] == "ok", result
        assert result["messages"] == N
        [run] = result["runs"]
        assert run["ok"] and run["sent"] == N and run["received"] == N
        assert run["seconds"] > 0
        assert result["median_seconds"] == result["min_seconds"] == run["seconds"]
        assert result["msgs_per_second"] == pytest.approx(N / run["seconds"])
    assert by_peer["nodemailer"]["ratio_vs_nodemailer"] == pytest.approx(1.0)
    assert by_peer["aiosmtplib-raw"]["ratio_vs_nodemailer"] == pytest.approx(
        by_peer["nodemailer"]["median_seconds"] / by_peer["aiosmtplib-raw"]["median_seconds"]
    )
    assert by_peer["nodemailer"]["versions"]["nodemailer"]


async def test_unavailable_peers_are_na_with_their_reason() -> None:
    peers: list[Peer] = [UnavailablePeer(), NotBuiltPeer(), AiosmtplibRawPeer()]
    report = await run_bench(quick(repeat=2), peers)
    missing, not_built, raw = report.results
    assert (missing.status, missing.reason) == ("n/a", "the missing tool is not installed")
    assert (not_built.status, not_built.reason) == ("n/a", "the engine is not built yet")
    assert missing.runs == not_built.runs == []
    assert missing.median_seconds is None and missing.ratio_vs_nodemailer is None
    assert raw.status == "ok" and len(raw.runs) == 2
    assert not report.failed
    assert render_notes(report) == [
        "missing-tool: n/a: the missing tool is not installed",
        "not-built: n/a: the engine is not built yet",
    ]
    assert report.to_json()["results"][0]["status"] == "n/a"


async def test_a_run_that_lost_messages_is_failed_not_fast() -> None:
    report = await run_bench(quick(settle_timeout=0.5), [LossyPeer()])
    [lossy] = report.results
    assert lossy.status == "failed"
    assert lossy.reason == f"sink received {N - 5} of {N} messages"
    [run] = lossy.runs
    assert not run.ok and run.received == N - 5
    assert lossy.median_seconds is None and lossy.msgs_per_second is None
    assert report.failed


async def test_duplicates_fail_even_when_the_count_adds_up() -> None:
    report = await run_bench(quick(), [DuplicatingPeer()])
    [dup] = report.results
    assert dup.runs[0].received == N
    assert (dup.status, dup.reason) == ("failed", "sink received 1 duplicate Message-ID(s)")


async def test_aiosmtpd_fallback_sink_counts_and_records_ids() -> None:
    sink = await start_sink("aiosmtpd", record_message_ids=True)
    try:
        workload = Workload(build_messages(5), Path("/nonexistent"))
        ctx = RunContext(workload, 1, sink.host, sink.port)
        await send_all(ctx, list(workload.messages))
        assert await sink.wait_for_count(5, within=5) == 5
        await sink.stop()
        assert sink.message_ids() == [m.message_id for m in workload.messages]
    finally:
        await sink.close()


def test_unknown_peer_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--peers", "sendmail"]) == 2
    assert "unknown peer(s) sendmail" in capsys.readouterr().err


def test_messages_are_identical_for_every_peer() -> None:
    a, b = build_messages(3), build_messages(3)
    assert a == b
    assert len({m.message_id for m in a}) == 3
    assert all(m.raw.count(b"\r\n") > 50 and b"\n" not in m.raw.replace(b"\r\n", b"") for m in a)
