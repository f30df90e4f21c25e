"""The sender-domain check end to end below the web: visitmail's dnspython resolver asks a
real DNS server on loopback (dnslib) that serves each test's zone, and the report says
what an admin reads: a verdict per check, the reason, the record to publish."""

from __future__ import annotations

import pytest

from tests.support.dns_server import DnsTestServer, Record
from visitmail.adapters.dns.public_suffix import organizational_domain
from visitmail.adapters.dns.resolver import DnspythonResolver
from visitmail.domain.errors import InvalidInput
from visitmail.domain.sender_domain import DomainReport, Verdict
from visitmail.domain.smtp_settings import Security, SmtpSettings
from visitmail.services.sender_domain import check_domain

D = "acme-fair.example"
M365_SPF = ("spf.protection.outlook.com", "TXT", "v=spf1 ip4:40.92.0.0/15 ip4:52.100.0.0/14 -all")
GOOGLE_SPF = ("_spf.google.com", "TXT", "v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ~all")
SENDGRID_SPF = ("sendgrid.net", "TXT", "v=spf1 ip4:167.89.0.0/17 ~all")
KEY = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtestkey"


def settings(preset: str | None, host: str, *, per_day: int | None = None) -> SmtpSettings:
    from visitmail.domain.smtp_settings import Limits

    return SmtpSettings(
        host=host,
        port=587,
        security=Security.STARTTLS,
        sender_email=f"sales@{D}",
        preset=preset,
        limits=Limits(per_day=per_day),
    )


M365 = settings("microsoft-365", "smtp.office365.com")
GOOGLE = settings("google-workspace", "smtp.gmail.com")
SENDGRID = settings("sendgrid", "smtp.sendgrid.net")


async def run(
    server: DnsTestServer,
    records: list[Record],
    smtp: SmtpSettings | None,
    *,
    domain: str = D,
    selectors: tuple[str, ...] = (),
    servfail: tuple[str, ...] = (),
) -> DomainReport:
    server.serve(records, servfail=servfail)
    resolver = DnspythonResolver([server.address], timeout=1, lifetime=2)
    return await check_domain(
        resolver,
        domain,
        settings=smtp,
        selectors=selectors,
        organizational_domain=organizational_domain,
    )


def m365_zone(**replace: list[Record]) -> list[Record]:
    parts: dict[str, list[Record]] = {
        "spf": [(D, "TXT", "v=spf1 include:spf.protection.outlook.com -all"), M365_SPF],
        "dkim": [
            (
                f"selector1._domainkey.{D}",
                "CNAME",
                "selector1-acme-fair-example._domainkey.acmefair.onmicrosoft.com",
            ),
            (
                f"selector2._domainkey.{D}",
                "CNAME",
                "selector2-acme-fair-example._domainkey.acmefair.onmicrosoft.com",
            ),
            ("selector1-acme-fair-example._domainkey.acmefair.onmicrosoft.com", "TXT", KEY),
            ("selector2-acme-fair-example._domainkey.acmefair.onmicrosoft.com", "TXT", KEY),
        ],
        "dmarc": [(f"_dmarc.{D}", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@acme-fair.example")],
        "other": [(D, "TXT", "google-site-verification=abc"), (D, "MX", f"10 mx.{D}")],
    }
    parts.update(replace)
    return [r for group in parts.values() for r in group]


async def test_correct_records_for_microsoft_365_are_ok_everywhere(
    dns_server: DnsTestServer,
) -> None:
    report = await run(dns_server, m365_zone(), M365)
    assert report.provider == "microsoft-365"
    assert [(c.name, c.verdict) for c in report.checks] == [
        ("spf", Verdict.OK),
        ("dkim", Verdict.OK),
        ("dmarc", Verdict.OK),
    ]
    assert report.verdict is Verdict.OK
    assert all(not c.records for c in report.checks)
    assert "authorizes Microsoft 365" in report.check("spf").summary
    assert report.check("dkim").details["published"] == ["selector1", "selector2"]
    assert report.check("dmarc").summary == "p=reject, mail aligns"
    assert {b.name: b.met for b in report.bulk} == {
        "SPF": True,
        "DKIM": True,
        "DMARC": True,
        "Alignment": True,
        "One-click unsubscribe": True,
    }


async def test_a_missing_spf_include_is_an_error_with_the_merged_record(
    dns_server: DnsTestServer,
) -> None:
    zone = [
        (D, "TXT", "v=spf1 include:_spf.mailhost.example mx ~all"),
        ("_spf.mailhost.example", "TXT", "v=spf1 ip4:198.51.100.0/24 -all"),
        (D, "MX", f"10 mx.{D}"),
        (f"mx.{D}", "A", "198.51.100.7"),
        (f"google._domainkey.{D}", "TXT", KEY),
        (f"_dmarc.{D}", "TXT", "v=DMARC1; p=quarantine"),
        GOOGLE_SPF,
    ]
    report = await run(dns_server, zone, GOOGLE)
    spf = report.check("spf")
    assert spf.verdict is Verdict.ERROR
    assert "include:_spf.google.com is missing" in spf.explanation
    (change,) = spf.records
    assert change.action == "replace"
    assert change.type == "TXT"
    assert change.name == D
    # One record, the provider merged in before "all": never a second v=spf1 record.
    assert change.value == "v=spf1 include:_spf.mailhost.example mx include:_spf.google.com ~all"
    assert change.replaces == ("v=spf1 include:_spf.mailhost.example mx ~all",)
    # DKIM aligns, so DMARC still passes.
    assert report.check("dkim").verdict is Verdict.OK
    assert report.check("dmarc").verdict is Verdict.OK


async def test_no_spf_record_at_all_gets_a_new_one(dns_server: DnsTestServer) -> None:
    zone = m365_zone(spf=[M365_SPF])
    spf = report_spf = (await run(dns_server, zone, M365)).check("spf")
    assert report_spf.verdict is Verdict.ERROR
    assert spf.summary == "no SPF record"
    (change,) = spf.records
    assert (change.action, change.value) == (
        "add",
        "v=spf1 include:spf.protection.outlook.com -all",
    )


async def test_a_missing_dkim_key_is_an_error_with_what_to_publish(
    dns_server: DnsTestServer,
) -> None:
    zone = [
        (D, "TXT", "v=spf1 include:_spf.google.com ~all"),
        GOOGLE_SPF,
        (f"_dmarc.{D}", "TXT", "v=DMARC1; p=none"),
    ]
    report = await run(dns_server, zone, GOOGLE)
    dkim = report.check("dkim")
    assert dkim.verdict is Verdict.ERROR
    assert "No DKIM key is published for selector google" in dkim.explanation
    (change,) = dkim.records
    assert (change.action, change.type, change.name) == ("add", "TXT", f"google._domainkey.{D}")
    assert change.value == "v=DKIM1; k=rsa; p=<public key>"
    assert change.note is not None and "Admin console" in change.note
    # SPF aligns for Google (own Return-Path): p=none passes, no rejection.
    assert report.check("dmarc").verdict is Verdict.OK


async def test_microsoft_365_cname_without_a_key_says_enable_signing(
    dns_server: DnsTestServer,
) -> None:
    zone = m365_zone(
        dkim=[
            (
                f"selector1._domainkey.{D}",
                "CNAME",
                "selector1-acme-fair-example._domainkey.acmefair.onmicrosoft.com",
            )
        ]
    )
    report = await run(dns_server, zone, M365)
    dkim = report.check("dkim")
    assert dkim.verdict is Verdict.ERROR
    assert "Microsoft Defender portal" in dkim.explanation
    names = [(r.type, r.name, r.value) for r in dkim.records]
    assert (
        "CNAME",
        f"selector2._domainkey.{D}",
        "selector2-acme-fair-example._domainkey.<tenant>.onmicrosoft.com",
    ) in names
    # DKIM does not align, but SPF does (Microsoft 365 keeps the own Return-Path).
    assert report.check("dmarc").verdict is Verdict.OK


async def test_misaligned_p_reject_means_mail_will_be_rejected(dns_server: DnsTestServer) -> None:
    zone = [
        (D, "TXT", "v=spf1 include:sendgrid.net -all"),
        SENDGRID_SPF,
        (f"_dmarc.{D}", "TXT", "v=DMARC1; p=reject; adkim=s"),
    ]
    report = await run(dns_server, zone, SENDGRID)
    assert report.check("spf").verdict is Verdict.OK
    dmarc = report.check("dmarc")
    assert dmarc.verdict is Verdict.ERROR
    assert dmarc.summary == "p=reject: mail will be rejected"
    assert "own bounce domain in the Return-Path" in dmarc.explanation
    assert "will be rejected" in dmarc.explanation
    # The fix: the DKIM records SendGrid signs with.
    assert [r.name for r in dmarc.records] == [f"s1._domainkey.{D}", f"s2._domainkey.{D}"]
    assert {b.name: b.met for b in report.bulk}["Alignment"] is False


async def test_quarantine_without_alignment_goes_to_spam(dns_server: DnsTestServer) -> None:
    zone = [
        (D, "TXT", "v=spf1 include:sendgrid.net -all"),
        SENDGRID_SPF,
        (f"_dmarc.{D}", "TXT", "v=DMARC1; p=quarantine; pct=50"),
    ]
    dmarc = (await run(dns_server, zone, SENDGRID)).check("dmarc")
    assert dmarc.verdict is Verdict.ERROR
    assert dmarc.summary == "p=quarantine: mail will be delivered to spam"
    assert "50%" in dmarc.explanation


async def test_two_spf_records_are_a_permanent_error_and_merge_into_one(
    dns_server: DnsTestServer,
) -> None:
    zone = m365_zone(
        spf=[
            (D, "TXT", "v=spf1 include:spf.protection.outlook.com -all"),
            (D, "TXT", "v=spf1 ip4:192.0.2.10 ~all"),
            M365_SPF,
        ]
    )
    spf = (await run(dns_server, zone, M365)).check("spf")
    assert spf.verdict is Verdict.ERROR
    assert spf.summary == "2 SPF records (only one is allowed)"
    (change,) = spf.records
    assert change.value == "v=spf1 include:spf.protection.outlook.com ip4:192.0.2.10 -all"
    assert set(change.replaces) == {
        "v=spf1 include:spf.protection.outlook.com -all",
        "v=spf1 ip4:192.0.2.10 ~all",
    }


async def test_more_than_ten_lookups_through_nested_includes(dns_server: DnsTestServer) -> None:
    nested: list[Record] = [
        (D, "TXT", "v=spf1 include:a.spf.example include:spf.protection.outlook.com mx -all"),
        ("a.spf.example", "TXT", "v=spf1 include:b.spf.example include:c.spf.example a -all"),
        ("b.spf.example", "TXT", "v=spf1 include:d.spf.example a:x.spf.example ~all"),
        ("c.spf.example", "TXT", "v=spf1 mx:spf.example exists:%{i}.e.spf.example ~all"),
        ("d.spf.example", "TXT", "v=spf1 ip4:192.0.2.0/24 a:y.spf.example ~all"),
        ("x.spf.example", "A", "192.0.2.1"),
        ("y.spf.example", "A", "192.0.2.2"),
        ("spf.example", "MX", "10 x.spf.example"),
        (D, "MX", "10 y.spf.example"),
        M365_SPF,
    ]
    spf = (await run(dns_server, m365_zone(spf=nested), M365)).check("spf")
    assert spf.details["lookups"] == 11
    assert spf.verdict is Verdict.ERROR
    assert spf.summary == "11 DNS lookups (at most 10)"
    assert "at most 10 are allowed" in spf.explanation


async def test_plus_all_is_an_error_and_the_fix_ends_with_minus_all(
    dns_server: DnsTestServer,
) -> None:
    zone = m365_zone(spf=[(D, "TXT", "v=spf1 include:spf.protection.outlook.com +all"), M365_SPF])
    spf = (await run(dns_server, zone, M365)).check("spf")
    assert spf.verdict is Verdict.ERROR
    assert spf.summary == "'+all' authorizes every server"
    assert spf.records[0].value == "v=spf1 include:spf.protection.outlook.com -all"


async def test_no_dmarc_is_a_warning_with_a_record_to_add(dns_server: DnsTestServer) -> None:
    report = await run(dns_server, m365_zone(dmarc=[]), M365)
    dmarc = report.check("dmarc")
    assert dmarc.verdict is Verdict.WARNING
    assert dmarc.summary == "no DMARC record"
    (change,) = dmarc.records
    assert (change.name, change.value) == (
        f"_dmarc.{D}",
        f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{D}",
    )
    assert {b.name: b.met for b in report.bulk}["DMARC"] is False


async def test_dmarc_falls_back_to_the_organizational_domain(dns_server: DnsTestServer) -> None:
    sub = "news.acme.co.uk"
    zone: list[Record] = [
        (sub, "TXT", "v=spf1 include:spf.protection.outlook.com -all"),
        M365_SPF,
        ("_dmarc.acme.co.uk", "TXT", "v=DMARC1; p=none; sp=reject"),
    ]
    report = await run(dns_server, zone, M365, domain=sub)
    dmarc = report.check("dmarc")
    assert dmarc.details["record_name"] == "_dmarc.acme.co.uk"
    assert dmarc.details["policy"] == "reject"  # sp= governs subdomains
    assert "inherited from the organizational domain" in dmarc.explanation


async def test_revoked_dkim_key_is_flagged(dns_server: DnsTestServer) -> None:
    zone = [
        (D, "TXT", "v=spf1 include:_spf.google.com ~all"),
        GOOGLE_SPF,
        (f"google._domainkey.{D}", "TXT", "v=DKIM1; k=rsa; p="),
        (f"_dmarc.{D}", "TXT", "v=DMARC1; p=reject"),
    ]
    dkim = (await run(dns_server, zone, GOOGLE)).check("dkim")
    assert dkim.verdict is Verdict.ERROR
    assert dkim.summary == "DKIM key revoked"
    assert "revoked (empty p=)" in dkim.explanation


async def test_an_extra_selector_is_looked_up(dns_server: DnsTestServer) -> None:
    zone = m365_zone(dkim=[(f"vm2026._domainkey.{D}", "TXT", KEY)])
    report = await run(dns_server, zone, None, selectors=("VM2026",))
    dkim = report.check("dkim")
    assert dkim.verdict is Verdict.OK
    assert dkim.details["published"] == ["vm2026"]
    missing = await run(dns_server, m365_zone(dkim=[]), None, selectors=("vm2026",))
    assert missing.check("dkim").verdict is Verdict.ERROR
    assert missing.check("dkim").records[0].name == f"vm2026._domainkey.{D}"


async def test_custom_host_covered_by_the_record(dns_server: DnsTestServer) -> None:
    custom = settings(None, f"mail.{D}")
    zone: list[Record] = [
        (D, "TXT", "v=spf1 mx -all"),
        (D, "MX", f"10 mail.{D}"),
        (f"mail.{D}", "A", "203.0.113.25"),
        (f"_dmarc.{D}", "TXT", "v=DMARC1; p=none"),
    ]
    report = await run(dns_server, zone, custom)
    assert report.provider is None
    assert report.check("spf").verdict is Verdict.OK
    assert report.check("dkim").verdict is Verdict.UNKNOWN  # no selector known
    assert report.check("dmarc").verdict is Verdict.OK  # SPF aligns on the own domain


async def test_custom_host_not_covered_gets_its_address_added(dns_server: DnsTestServer) -> None:
    custom = settings(None, f"relay.{D}")
    zone: list[Record] = [
        (D, "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
        (f"relay.{D}", "A", "203.0.113.80"),
    ]
    spf = (await run(dns_server, zone, custom)).check("spf")
    assert spf.verdict is Verdict.WARNING
    assert spf.records[0].value == "v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.80 -all"


async def test_custom_host_behind_exists_cannot_be_told(dns_server: DnsTestServer) -> None:
    custom = settings(None, f"relay.{D}")
    zone: list[Record] = [
        (D, "TXT", "v=spf1 exists:%{i}._spf.acme-fair.example -all"),
        (f"relay.{D}", "A", "203.0.113.80"),
    ]
    spf = (await run(dns_server, zone, custom)).check("spf")
    assert spf.verdict is Verdict.UNKNOWN
    assert "cannot be told" in spf.explanation
    assert spf.records == ()


async def test_provider_recognized_by_host_without_preset(dns_server: DnsTestServer) -> None:
    report = await run(dns_server, m365_zone(), settings(None, "smtp.office365.com"))
    assert report.provider == "microsoft-365"
    assert report.verdict is Verdict.OK


async def test_a_failing_dns_server_gives_unknown_not_error(dns_server: DnsTestServer) -> None:
    report = await run(dns_server, m365_zone(), M365, servfail=(D, f"_dmarc.{D}"))
    assert report.check("spf").verdict is Verdict.UNKNOWN
    assert report.check("dmarc").verdict is Verdict.UNKNOWN
    assert report.check("dkim").verdict is Verdict.OK


async def test_an_include_that_fails_hides_the_provider_so_unknown(
    dns_server: DnsTestServer,
) -> None:
    zone = m365_zone(spf=[(D, "TXT", "v=spf1 include:_spf.broken.example -all")])
    spf = (await run(dns_server, zone, M365, servfail=("_spf.broken.example",))).check("spf")
    assert spf.verdict is Verdict.UNKNOWN


async def test_a_long_txt_record_arrives_whole_over_tcp(dns_server: DnsTestServer) -> None:
    ranges = " ".join(f"ip4:198.51.{i}.0/24" for i in range(40))  # > 512 bytes: truncated UDP
    zone = m365_zone(
        spf=[(D, "TXT", f"v=spf1 {ranges} include:spf.protection.outlook.com -all"), M365_SPF]
    )
    spf = (await run(dns_server, zone, M365)).check("spf")
    assert spf.verdict is Verdict.OK
    assert spf.found[0].endswith("include:spf.protection.outlook.com -all")


@pytest.mark.parametrize(
    "bad", ["", "localhost", "exa mple.com", "192.0.2.1", "a" * 64 + ".example", "x" * 600]
)
async def test_bad_domains_are_refused_naming_the_field(
    dns_server: DnsTestServer, bad: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await run(dns_server, [], None, domain=bad)
    assert caught.value.field == "domain"


async def test_bad_selectors_are_refused(dns_server: DnsTestServer) -> None:
    with pytest.raises(InvalidInput) as caught:
        await run(dns_server, [], None, selectors=("bad selector",))
    assert caught.value.field == "selector"
    with pytest.raises(InvalidInput):
        await run(dns_server, [], None, selectors=tuple(f"s{i}" for i in range(11)))
