"""The DnsResolver port's shared contract: the dnspython adapter against the loopback DNS
server, and the in-memory fake, answer the same zone the same way. Plus the adapter's own
bounds: answer sizes, a server that never answers, no server at all."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from tests.support.dns_server import DnsTestServer, Record
from tests.support.fake_dns import FakeDnsResolver
from visitmail.adapters.dns.resolver import MAX_RECORD_LENGTH, DnspythonResolver
from visitmail.domain.dns_answers import Lookup, LookupStatus
from visitmail.services.sender_domain import DnsResolver

ZONE: list[Record] = [
    ("example.net", "TXT", "v=spf1 -all"),
    ("example.net", "TXT", "other text"),
    ("example.net", "MX", "20 mx2.example.net"),
    ("example.net", "MX", "10 mx1.example.net"),
    ("mx1.example.net", "A", "192.0.2.1"),
    ("mx1.example.net", "AAAA", "2001:db8::1"),
    ("s1._domainkey.example.net", "CNAME", "s1.keys.example.org"),
    ("s1.keys.example.org", "TXT", "v=DKIM1; p=abc"),
    ("deep.below.example.net", "A", "192.0.2.9"),
]

Factory = Callable[[list[Record], list[str]], DnsResolver]


@pytest.fixture(params=["dnspython+dnslib", "fake"])
def make(request: pytest.FixtureRequest, dns_server: DnsTestServer) -> Factory:
    def real(records: list[Record], servfail: list[str]) -> DnsResolver:
        dns_server.serve(records, servfail=servfail)
        return DnspythonResolver([dns_server.address], timeout=1, lifetime=2)

    def fake(records: list[Record], servfail: list[str]) -> DnsResolver:
        return FakeDnsResolver(records, servfail=servfail)

    return real if request.param == "dnspython+dnslib" else fake


async def test_txt_records(make: Factory) -> None:
    resolver = make(ZONE, [])
    found = await resolver.txt("Example.NET.")
    assert found.status is LookupStatus.FOUND
    assert sorted(found.values) == ["other text", "v=spf1 -all"]
    assert found.canonical_name is None


async def test_cname_is_followed_for_txt_and_answered_for_cname(make: Factory) -> None:
    resolver = make(ZONE, [])
    txt = await resolver.txt("s1._domainkey.example.net")
    assert txt == Lookup.found("v=DKIM1; p=abc", canonical_name="s1.keys.example.org")
    assert await resolver.cname("s1._domainkey.example.net") == Lookup.found("s1.keys.example.org")


async def test_missing_names_and_types(make: Factory) -> None:
    resolver = make(ZONE, [])
    assert (await resolver.txt("nothing.example.net")).status is LookupStatus.NXDOMAIN
    assert (await resolver.txt("mx1.example.net")).status is LookupStatus.NODATA
    assert (
        await resolver.txt("below.example.net")
    ).status is LookupStatus.NODATA  # empty non-terminal
    assert (await resolver.cname("example.net")).status is LookupStatus.NODATA


async def test_addresses_and_mx(make: Factory) -> None:
    resolver = make(ZONE, [])
    both = await resolver.addresses("mx1.example.net")
    assert sorted(both.values) == ["192.0.2.1", "2001:db8::1"]
    assert (await resolver.addresses("mx2.example.net")).status is LookupStatus.NXDOMAIN
    assert (await resolver.mx("example.net")).values == ("mx1.example.net", "mx2.example.net")


async def test_server_failure_is_an_error_not_a_missing_record(make: Factory) -> None:
    resolver = make(ZONE, ["example.net"])
    failed = await resolver.txt("example.net")
    assert failed.status is LookupStatus.ERROR
    assert failed.error


async def test_answers_are_bounded(dns_server: DnsTestServer) -> None:
    huge = "v=spf1 " + "ip4:192.0.2.1 " * 800  # ~11 kB: TCP, then cut
    dns_server.serve(
        [("big.example.net", "TXT", huge)]
        + [("many.example.net", "TXT", f"t{i}") for i in range(70)]
    )
    resolver = DnspythonResolver([dns_server.address], timeout=1, lifetime=3)
    big = await resolver.txt("big.example.net")
    assert len(big.values[0]) == MAX_RECORD_LENGTH
    assert len((await resolver.txt("many.example.net")).values) == 50


async def test_a_silent_server_gives_an_error_within_the_lifetime() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives, never answers
        resolver = DnspythonResolver([silent.getsockname()], timeout=0.2, lifetime=0.5)
        answer = await asyncio.wait_for(resolver.txt("example.net"), timeout=10)
    assert answer.status is LookupStatus.ERROR
    assert answer.error == "no answer for example.net in time"


async def test_no_configured_server_is_an_error() -> None:
    resolver = DnspythonResolver()
    resolver._resolver.nameservers = []  # a host without /etc/resolv.conf
    assert (await resolver.txt("example.net")).error == "no DNS server is configured"
