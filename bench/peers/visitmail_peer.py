"""``visitmail``: the system under test.

Enqueue N messages into visitmail's durable outbox, then run its delivery worker until the
outbox is drained, with ``connections`` pooled SMTP connections to the sink. Measures: wall
time from the start of sending (state when enqueueing is inside the window) until the last
message was accepted by the sink.

To send what the other peers send, build the messages with
``bench.workload.build_messages(n)``: deterministic, so the bytes are the same. visitmail
fixes its own Message-IDs at enqueue; return them in ``PeerResult.message_ids`` so the
runner checks that each arrived exactly once.

``database_url`` is a fresh, empty database for this run (``sqlite:///…`` in a temporary
directory, or a throwaway PostgreSQL database); migrating it is setup, outside the window.
"""

from __future__ import annotations

from bench.peers.base import PeerResult, PeerUnavailable


async def run(
    n: int, connections: int, sink_host: str, sink_port: int, database_url: str
) -> PeerResult:
    """Send ``n`` messages through visitmail's outbox and worker to the sink; report the
    accepted count and the seconds. Raises ``PeerUnavailable`` while the engine is missing."""
    raise PeerUnavailable("visitmail's delivery engine is not built yet")
