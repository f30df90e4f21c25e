"""The peers the runner knows by name, in the order the report lists them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version

from bench.databases import DatabaseKind
from bench.peers import visitmail_peer
from bench.peers.aiosmtplib_raw import AiosmtplibRawPeer
from bench.peers.base import Peer, PeerResult, PeerUnavailable, RunContext
from bench.peers.nodemailer import NodemailerPeer
from bench.workload import Workload


class VisitmailPeer:
    """Adapts ``bench.peers.visitmail_peer.run`` to ``Peer``; it gets a fresh database per
    run from the runner."""

    name = "visitmail"
    needs_database = True

    async def prepare(self, workload: Workload) -> Mapping[str, str]:
        try:
            return {"visitmail": version("visitmail")}
        except PackageNotFoundError:
            raise PeerUnavailable("visitmail is not installed in this environment") from None

    async def run(self, ctx: RunContext) -> PeerResult:
        if ctx.database_url is None:
            raise RuntimeError("the visitmail peer needs a database")
        return await visitmail_peer.run(
            ctx.workload.n, ctx.connections, ctx.sink_host, ctx.sink_port, ctx.database_url
        )


PEERS: dict[str, Callable[[], Peer]] = {
    "nodemailer": NodemailerPeer,
    "nodemailer-default": lambda: NodemailerPeer(nodelay=False),
    "aiosmtplib-raw": AiosmtplibRawPeer,
    "visitmail": VisitmailPeer,
}


def make_peers(names: list[str]) -> list[Peer]:
    """Fresh peer objects for ``names``; raises ``KeyError`` naming an unknown peer."""
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise KeyError(f"unknown peer(s): {', '.join(unknown)}; known: {', '.join(PEERS)}")
    return [PEERS[n]() for n in names]


class OnDatabase:
    """``peer`` pinned to one kind of database, under the name ``"<peer> (<kind>)"``, so
    one run can hold the same peer on SQLite and on PostgreSQL side by side (the runner
    gives each run a fresh database of this kind)."""

    needs_database = True

    def __init__(self, peer: Peer, database: DatabaseKind) -> None:
        self.peer = peer
        self.database: DatabaseKind = database
        self.name = f"{peer.name} ({database})"

    async def prepare(self, workload: Workload) -> Mapping[str, str]:
        return await self.peer.prepare(workload)

    async def run(self, ctx: RunContext) -> PeerResult:
        return await self.peer.run(ctx)
