"""What a peer is, what it reports, and how it says it cannot run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bench.workload import Workload


class PeerUnavailable(Exception):
    """The peer cannot run on this machine (a tool is missing, an engine is not built yet).
    The runner shows it as ``n/a`` with ``reason`` and goes on with the other peers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PeerResult:
    """What one peer run reports about itself.

    ``sent``: messages the sink accepted, as the peer saw it (a 250 reply to the final dot).
    ``seconds``: wall time from the start of sending (the clock starts before the first
    connection is opened) until the last message was accepted. Setup that comes before,
    such as loading the messages or migrating a database, is not in it.
    ``message_ids``: the Message-IDs the peer sent, when they are not the workload's own
    (visitmail fixes its own at enqueue); None means the workload's.
    ``details``: free-form facts for the JSON report (versions, notes).
    """

    sent: int
    seconds: float
    message_ids: frozenset[str] | None = None
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunContext:
    """Everything one run of one peer gets: the same for every peer in a repeat, except a
    fresh sink (and a fresh database for peers that need one)."""

    workload: Workload
    connections: int
    sink_host: str
    sink_port: int
    database_url: str | None = None


class Peer(Protocol):
    """A sender under measurement.

    ``prepare`` runs once per benchmark, untimed: it checks the peer can run (raising
    ``PeerUnavailable`` if not) and returns version facts for the report. ``run`` sends the
    context's workload to the sink once and reports ``PeerResult``; any other exception
    marks that run failed.
    """

    @property
    def name(self) -> str: ...

    @property
    def needs_database(self) -> bool: ...

    async def prepare(self, workload: Workload) -> Mapping[str, str]: ...

    async def run(self, ctx: RunContext) -> PeerResult: ...
