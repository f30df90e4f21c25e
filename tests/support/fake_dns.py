"""An in-memory :class:`~visitmail.services.sender_domain.DnsResolver` for service tests
that need no sockets. Same records and semantics as ``tests/support/dns_server.py`` (the
shared contract test in ``tests/integration/dns`` holds both to them)."""

from __future__ import annotations

from collections.abc import Iterable

from tests.support.dns_server import Record
from visitmail.domain.dns_answers import Lookup, LookupStatus


class FakeDnsResolver:
    def __init__(self, records: Iterable[Record] = (), *, servfail: Iterable[str] = ()) -> None:
        self.zone: dict[str, list[tuple[str, str]]] = {}
        for name, rtype, value in records:
            self.zone.setdefault(name.lower().rstrip("."), []).append((rtype.upper(), value))
        self.servfail = {n.lower().rstrip(".") for n in servfail}
        self.asked: list[tuple[str, str]] = []

    def _lookup(self, name: str, rtype: str) -> Lookup:
        key = name.lower().rstrip(".")
        self.asked.append((key, rtype))
        canonical: str | None = None
        for _hop in range(8):
            if key in self.servfail:
                return Lookup(LookupStatus.ERROR, error=f"the DNS servers failed for {name}")
            here = self.zone.get(key, [])
            cnames = [v for t, v in here if t == "CNAME"]
            if cnames and rtype != "CNAME":
                key = canonical = cnames[0].lower().rstrip(".")
                continue
            values = [v for t, v in here if t == rtype]
            if values:
                return Lookup.found(*values, canonical_name=canonical)
            exists = bool(here) or any(other.endswith("." + key) for other in self.zone)
            return Lookup(LookupStatus.NODATA if exists else LookupStatus.NXDOMAIN)
        return Lookup(LookupStatus.ERROR, error="CNAME chain too long")

    async def txt(self, name: str) -> Lookup:
        return self._lookup(name, "TXT")

    async def cname(self, name: str) -> Lookup:
        return self._lookup(name, "CNAME")

    async def addresses(self, name: str) -> Lookup:
        v4, v6 = self._lookup(name, "A"), self._lookup(name, "AAAA")
        values = [*v4.values, *v6.values]
        if values:
            return Lookup.found(*values)
        for status in (LookupStatus.ERROR, LookupStatus.NXDOMAIN):
            if status in (v4.status, v6.status):
                return v4 if v4.status is status else v6
        return Lookup(LookupStatus.NODATA)

    async def mx(self, name: str) -> Lookup:
        found = self._lookup(name, "MX")
        if found.status is not LookupStatus.FOUND:
            return found
        ranked = sorted((v.split() for v in found.values), key=lambda p: int(p[0]))
        return Lookup.found(*(exchange.lower().rstrip(".") for _pref, exchange in ranked))
