"""A real DNS server for tests: dnslib on 127.0.0.1, UDP and TCP on one free port, serving
the records a test gives it. No internet, no mocks: visitmail's resolver talks DNS to it.

Records are ``(name, type, value)``: ``("example.com", "TXT", "v=spf1 -all")``,
``("s1._domainkey.example.com", "CNAME", "s1.example.net")``, ``A``, ``AAAA``,
``MX`` (value ``"10 mx.example.com"``). A TXT value longer than 255 bytes is split into
strings as a zone file would. Names are matched case-insensitively; a CNAME is followed
inside the zone. A name that has no records but has names below it answers NODATA (an
empty non-terminal), any other unknown name NXDOMAIN. Names listed in ``servfail`` answer
SERVFAIL. ``queries`` records every (name, type) asked.

Usage::

    server = DnsTestServer.start()
    server.serve([("example.com", "TXT", "v=spf1 include:_spf.google.com -all")])
    ...  # point the resolver at ("127.0.0.1", server.port)
    server.stop()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel, DNSRecord
from dnslib.server import DNSServer

Record = tuple[str, str, str]
HOST = "127.0.0.1"
TTL = 60


class _Quiet:
    """dnslib logs every packet to stdout by default; tests keep quiet."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: None


def _rdata(rtype: str, value: str) -> Any:
    if rtype == "TXT":
        raw = value.encode()
        return TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""])
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "CNAME":
        return CNAME(value)
    if rtype == "MX":
        preference, exchange = value.split()
        return MX(exchange, int(preference))
    raise ValueError(f"unsupported record type {rtype}")


def _key(name: str) -> str:
    return name.lower().rstrip(".")


@dataclass
class _ZoneResolver:
    records: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = _key(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
            records = dict(self.records)
            servfail = set(self.servfail)
        if qname in servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        name = qname
        for _hop in range(8):  # follow CNAMEs inside the zone
            here = records.get(name, [])
            cnames = [v for t, v in here if t == "CNAME"]
            if cnames and qtype != "CNAME":
                reply.add_answer(RR(DNSLabel(name), QTYPE.CNAME, rdata=CNAME(cnames[0]), ttl=TTL))
                name = _key(cnames[0])
                if name in servfail:
                    reply.header.rcode = RCODE.SERVFAIL
                    return reply
                continue
            for rtype, value in here:
                if rtype == qtype:
                    rr = RR(DNSLabel(name), getattr(QTYPE, rtype), rdata=_rdata(rtype, value))
                    rr.ttl = TTL
                    reply.add_answer(rr)
            exists = bool(here) or any(other.endswith("." + name) for other in records)
            if not exists and not reply.rr:
                reply.header.rcode = RCODE.NXDOMAIN
            break
        return reply


@dataclass
class DnsTestServer:
    port: int
    resolver: _ZoneResolver
    servers: list[DNSServer]

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self.resolver.lock:
            return list(self.resolver.queries)

    @classmethod
    def start(cls) -> DnsTestServer:
        resolver = _ZoneResolver()
        last: OSError | None = None
        for _attempt in range(20):
            port = _free_udp_port()
            servers: list[DNSServer] = []
            try:
                for tcp in (False, True):
                    servers.append(
                        DNSServer(resolver, address=HOST, port=port, tcp=tcp, logger=_Quiet())
                    )
            except OSError as exc:  # the port was taken meanwhile: try another
                last = exc
                for server in servers:
                    server.server.server_close()
                continue
            for server in servers:
                server.start_thread()
            return cls(port, resolver, servers)
        raise RuntimeError(f"no free port for the DNS test server: {last}")

    def serve(self, records: Iterable[Record], *, servfail: Iterable[str] = ()) -> None:
        """Replace the zone."""
        zone: dict[str, list[tuple[str, str]]] = {}
        for name, rtype, value in records:
            zone.setdefault(_key(name), []).append((rtype.upper(), value))
        with self.resolver.lock:
            self.resolver.records = zone
            self.resolver.servfail = {_key(n) for n in servfail}
            self.resolver.queries.clear()

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
                server.server.server_close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
