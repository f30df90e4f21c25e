"""The sender-domain use case over the in-memory resolver: which names it asks, and its
bounds (queries, depth), so a hostile zone cannot make one check run away."""

from __future__ import annotations

import asyncio

from tests.support.dns_server import Record
from tests.support.fake_dns import FakeDnsResolver
from visitmail.domain.dns_answers import Lookup
from visitmail.domain.sender_domain import Verdict
from visitmail.domain.smtp_settings import Security, SmtpSettings
from visitmail.services.sender_domain import MAX_QUERIES, check_domain

D = "bounded.example"


async def test_an_endless_include_chain_stops_at_the_bounds() -> None:
    chain: list[Record] = [(D, "TXT", "v=spf1 include:n0.example -all")]
    chain += [
        (f"n{i}.example", "TXT", f"v=spf1 a include:n{i + 1}.example -all") for i in range(200)
    ]
    resolver = FakeDnsResolver(chain)
    report = await check_domain(resolver, D)
    assert len(resolver.asked) <= MAX_QUERIES * 2  # addresses() asks A and AAAA
    assert ("n50.example", "TXT") not in resolver.asked  # the walk stops at depth 10
    spf = report.check("spf")
    assert spf.verdict is Verdict.ERROR  # far over 10 lookups already
    assert int(spf.details["lookups"]) > 10


async def test_names_asked_for_a_microsoft_365_sender() -> None:
    resolver = FakeDnsResolver([])
    settings = SmtpSettings(
        host="smtp.office365.com",
        port=587,
        security=Security.STARTTLS,
        sender_email=f"a@mail.{D}",
        preset="microsoft-365",
    )
    report = await check_domain(
        resolver, f"mail.{D}", settings=settings, organizational_domain=lambda _d: D
    )
    asked = {name for name, _type in resolver.asked}
    assert {
        f"mail.{D}",
        f"_dmarc.mail.{D}",
        f"_dmarc.{D}",  # the organizational domain's policy
        f"selector1._domainkey.mail.{D}",
        f"selector2._domainkey.mail.{D}",
        "smtp.office365.com",
    } <= asked
    assert report.check("spf").summary == "no SPF record"


async def test_an_smtp_host_given_as_an_address_is_judged_by_that_address() -> None:
    resolver = FakeDnsResolver([(D, "TXT", "v=spf1 ip4:192.0.2.0/24 -all")])
    settings = SmtpSettings(
        host="192.0.2.25", port=25, security=Security.NONE, sender_email=f"a@{D}"
    )
    report = await check_domain(resolver, D, settings=settings)
    assert ("192.0.2.25", "A") not in resolver.asked  # an address is not looked up
    assert report.check("spf").verdict is Verdict.OK
    other = SmtpSettings(
        host="198.51.100.7", port=25, security=Security.NONE, sender_email=f"a@{D}"
    )
    spf = (await check_domain(resolver, D, settings=other)).check("spf")
    assert spf.verdict is Verdict.WARNING
    assert spf.records[0].value == "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 -all"


class _Hanging(FakeDnsResolver):
    """Answers DMARC lookups never: the check's time budget must end them."""

    async def txt(self, name: str) -> Lookup:
        if name.startswith("_dmarc."):
            await asyncio.Event().wait()
        return await super().txt(name)


async def test_lookups_past_the_budget_are_unknown_not_missing() -> None:
    resolver = _Hanging([(D, "TXT", "v=spf1 ip4:192.0.2.0/24 -all")])
    report = await asyncio.wait_for(check_domain(resolver, D, budget_seconds=0.05), timeout=10)
    dmarc = report.check("dmarc")
    assert dmarc.verdict is Verdict.UNKNOWN
    assert dmarc.summary == "DMARC record could not be read"
