"""The visitmail peer: enqueue into the outbox, deliver through the worker to the real sink
(smtp-sink), on SQLite. Small: 50 messages, one repeat; no timing is asserted."""

from __future__ import annotations

import pytest

from bench.databases import fresh_database
from bench.peers import visitmail_peer
from bench.peers.registry import VisitmailPeer
from bench.run import BenchConfig, run_bench
from bench.sink import start_sink
from bench.workload import build_messages

pytestmark = pytest.mark.xdist_group("bench")

N = 50


async def test_visitmail_peer_delivers_every_message_once() -> None:
    sink = await start_sink("smtp-sink", record_message_ids=True)
    try:
        async with fresh_database("sqlite") as url:
            result = await visitmail_peer.run(N, 2, sink.host, sink.port, url)
        received = await sink.wait_for_count(N, 5)
        await sink.stop()
        ids = sink.message_ids()
    finally:
        await sink.close()
    assert result.sent == N
    assert received == N
    expected = frozenset(m.message_id for m in build_messages(N))
    assert result.message_ids == expected  # the workload's own Message-IDs, kept
    assert sorted(ids) == sorted(expected)  # each arrived exactly once
    assert result.seconds > 0
    assert "first_error" not in result.details


async def test_visitmail_peer_counts_in_the_runner() -> None:
    config = BenchConfig(messages=N, connections=2, repeat=1, sink="smtp-sink")
    report = await run_bench(config, [VisitmailPeer()])
    (result,) = report.results
    assert result.status == "ok", result.reason
    (run,) = result.runs
    assert run.ok and run.sent == N and run.received == N
    assert result.msgs_per_second and result.msgs_per_second > 0


def test_envelope_addresses_move_off_the_special_use_domain() -> None:
    message = build_messages(1)[0]
    assert visitmail_peer.envelope_address(message.recipient) == (
        "colleague-00@bench.visitmail.example"
    )
    assert len(visitmail_peer.envelope_address(message.sender)) == len(message.sender)
    assert visitmail_peer.envelope_address("a@example.com") == "a@example.com"
