"""The :class:`~visitmail.services.sender_domain.DnsResolver` port on dnspython's asyncio
resolver.

Bounded: each query gives up after ``timeout`` seconds per server and ``lifetime`` in
all; an answer keeps at most :data:`MAX_RECORDS` records of at most
:data:`MAX_RECORD_LENGTH` characters (a TXT record's strings joined, RFC 7208 §3.3); a
longer one is cut, so a hostile zone cannot blow up a report. Search domains are never
appended. DNS failures never raise: they come back as ``LookupStatus.ERROR`` with the
reason, NXDOMAIN and "no records of this type" as their own statuses.

Nameservers: the operator's ``VISITMAIL_DNS_NAMESERVERS`` (``host`` or ``host:port``,
IPv6 as ``[::1]:53``), else the system's (``/etc/resolv.conf``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from visitmail.domain.dns_answers import Lookup, LookupStatus

MAX_RECORDS = 50
MAX_RECORD_LENGTH = 4096
DEFAULT_TIMEOUT = 2.0
DEFAULT_LIFETIME = 4.0


class DnspythonResolver:
    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT,
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers
            ]
        else:
            try:
                resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.timeout = timeout
        resolver.lifetime = lifetime
        resolver.cache = None  # a fixed record must show at once on the next check
        self._resolver = resolver

    async def _query(
        self, name: str, rdtype: dns.rdatatype.RdataType
    ) -> tuple[Lookup, dns.resolver.Answer | None]:
        if not self._resolver.nameservers:
            return Lookup(LookupStatus.ERROR, error="no DNS server is configured"), None
        try:
            answer = await self._resolver.resolve(
                dns.name.from_text(name), rdtype, search=False, raise_on_no_answer=True
            )
        except dns.resolver.NXDOMAIN:
            return Lookup(LookupStatus.NXDOMAIN), None
        except dns.resolver.NoAnswer:
            return Lookup(LookupStatus.NODATA), None
        except dns.exception.Timeout:
            return Lookup(LookupStatus.ERROR, error=f"no answer for {name} in time"), None
        except dns.resolver.NoNameservers:
            return Lookup(LookupStatus.ERROR, error=f"the DNS servers failed for {name}"), None
        except dns.exception.DNSException as exc:
            return Lookup(LookupStatus.ERROR, error=f"{type(exc).__name__} for {name}"), None
        return Lookup(LookupStatus.FOUND), answer

    @staticmethod
    def _canonical(name: str, answer: dns.resolver.Answer) -> str | None:
        canonical = answer.canonical_name.to_text(omit_final_dot=True).lower()
        return canonical if canonical != name.lower().rstrip(".") else None

    async def txt(self, name: str) -> Lookup:
        lookup, answer = await self._query(name, dns.rdatatype.TXT)
        if answer is None:
            return lookup
        values = []
        for rdata in list(answer)[:MAX_RECORDS]:
            joined = b"".join(rdata.strings)[:MAX_RECORD_LENGTH]
            values.append(joined.decode("utf-8", "replace"))
        return Lookup.found(*values, canonical_name=self._canonical(name, answer))

    async def cname(self, name: str) -> Lookup:
        lookup, answer = await self._query(name, dns.rdatatype.CNAME)
        if answer is None:
            return lookup
        targets = [r.target.to_text(omit_final_dot=True).lower() for r in answer]
        return Lookup.found(*targets[:MAX_RECORDS])

    async def addresses(self, name: str) -> Lookup:
        (v4, a), (v6, aaaa) = await asyncio.gather(
            self._query(name, dns.rdatatype.A), self._query(name, dns.rdatatype.AAAA)
        )
        values = [r.address for ans in (a, aaaa) if ans is not None for r in ans]
        if values:
            return Lookup.found(*values[:MAX_RECORDS])
        if LookupStatus.ERROR in (v4.status, v6.status):
            return v4 if v4.status is LookupStatus.ERROR else v6
        if LookupStatus.NXDOMAIN in (v4.status, v6.status):
            return Lookup(LookupStatus.NXDOMAIN)
        return Lookup(LookupStatus.NODATA)

    async def mx(self, name: str) -> Lookup:
        lookup, answer = await self._query(name, dns.rdatatype.MX)
        if answer is None:
            return lookup
        ranked = sorted(answer, key=lambda r: r.preference)
        exchanges = [r.exchange.to_text(omit_final_dot=True).lower() for r in ranked]
        return Lookup.found(*exchanges[:MAX_RECORDS])
