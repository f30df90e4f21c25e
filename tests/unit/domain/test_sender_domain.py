"""The pure judgement of the sender-domain check: provider recognition, DKIM record
states and DMARC policy edge cases, over hand-made DNS answers."""

from __future__ import annotations

import pytest

from tests.unit.domain.test_spf import Zone
from visitmail.domain.dns_answers import (
    Lookup,
    LookupStatus,
    normalize_domain,
    normalize_selectors,
)
from visitmail.domain.errors import InvalidInput
from visitmail.domain.sender_domain import DomainFacts, Verdict, assess
from visitmail.domain.sending_providers import provider_for

D = "example.org"
KEY = "v=DKIM1; k=rsa; p=MIIBIjAN"


def facts(provider: str | None, **extra: object) -> DomainFacts:
    found = provider_for(provider, None, D)
    return DomainFacts(
        domain=D,
        organizational_domain=D,
        provider=found,
        provider_name=found.name if found else None,
        **extra,  # type: ignore[arg-type]
    )


def snapshot(txt: dict[str, str], cname: dict[str, str] | None = None) -> Zone:
    z = Zone(txt={k: Lookup.found(v) for k, v in txt.items()})
    z.cname = {k: Lookup.found(v) for k, v in (cname or {}).items()}
    z.cname.update({k: Lookup(LookupStatus.NXDOMAIN) for k in txt if k not in z.cname})
    return z


def test_provider_is_recognized_by_preset_or_host() -> None:
    assert provider_for("sendgrid", None, D).id == "sendgrid"  # type: ignore[union-attr]
    assert provider_for(None, "email-smtp.eu-west-1.amazonaws.com", D).id == "amazon-ses"  # type: ignore[union-attr]
    assert provider_for(None, "SMTP.Office365.com.", D).id == "microsoft-365"  # type: ignore[union-attr]
    assert provider_for(None, "smtp.gmail.com", "gmail.com").id == "gmail"  # type: ignore[union-attr]
    assert provider_for(None, "mail.example.org", D) is None
    assert provider_for("ionos", "smtp.ionos.de", D) is None  # no known include: judged by host


def test_dmarc_without_policy_but_with_rua_is_none() -> None:
    z = snapshot(
        {
            D: "v=spf1 include:_spf.google.com -all",
            "_spf.google.com": "v=spf1 ip4:64.233.160.0/19 ~all",
            f"google._domainkey.{D}": KEY,
            f"_dmarc.{D}": "v=DMARC1; rua=mailto:r@example.org",
        }
    )
    dmarc = assess(facts("google-workspace"), z).check("dmarc")
    assert dmarc.details["policy"] == "none"
    assert dmarc.verdict is Verdict.OK
    assert "p=none only monitors" in dmarc.explanation


def test_dmarc_with_an_invalid_policy_is_an_error() -> None:
    z = snapshot({f"_dmarc.{D}": "v=DMARC1; p=block"})
    dmarc = assess(facts(None), z).check("dmarc")
    assert dmarc.verdict is Verdict.ERROR
    assert dmarc.records[0].value == f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{D}"


def test_two_dmarc_records_are_an_error() -> None:
    z = Zone(txt={f"_dmarc.{D}": Lookup.found("v=DMARC1; p=none", "v=DMARC1; p=reject")})
    assert assess(facts(None), z).check("dmarc").summary == "2 DMARC records (only one is allowed)"


def test_a_txt_that_is_not_a_key_is_flagged() -> None:
    z = snapshot({f"google._domainkey.{D}": "hello"})
    dkim = assess(facts("google-workspace"), z).check("dkim")
    assert dkim.verdict is Verdict.ERROR
    assert "is not a DKIM key" in dkim.explanation


def test_one_of_two_microsoft_selectors_is_a_warning() -> None:
    z = snapshot({f"selector1._domainkey.{D}": KEY})
    dkim = assess(facts("microsoft-365"), z).check("dkim")
    assert dkim.verdict is Verdict.WARNING
    assert dkim.summary == "DKIM selector selector2 missing"
    assert [r.name for r in dkim.records] == [f"selector2._domainkey.{D}"]


def test_question_mark_all_is_a_warning_with_the_fix() -> None:
    z = snapshot(
        {
            D: "v=spf1 include:spf.protection.outlook.com ?all",
            "spf.protection.outlook.com": "v=spf1 ip4:40.92.0.0/15 -all",
        }
    )
    spf = assess(facts("microsoft-365"), z).check("spf")
    assert spf.verdict is Verdict.WARNING
    assert spf.records[0].value == "v=spf1 include:spf.protection.outlook.com -all"


def test_bulk_applies_above_five_thousand_a_day() -> None:
    z = snapshot({})
    assert assess(facts(None, per_day=5000), z).bulk_applies is False
    assert assess(facts(None, per_day=5001), z).bulk_applies is True
    assert assess(facts(None), z).bulk_applies is None


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("Example.ORG.", "example.org"), ("bücher.example", "xn--bcher-kva.example")],
)
def test_domains_are_normalized(raw: str, clean: str) -> None:
    assert normalize_domain(raw) == clean


def test_selectors_are_normalized_and_bounded() -> None:
    assert normalize_selectors(["S1", "s1", "2024a.eu"]) == ("s1", "2024a.eu")
    with pytest.raises(InvalidInput):
        normalize_selectors(["-bad"])
    with pytest.raises(InvalidInput):
        normalize_selectors(["x"] * 11)


def test_an_spf_permerror_fails_spf_alignment_even_with_the_include() -> None:
    z = snapshot(
        {
            D: "v=spf1 include:spf.protection.outlook.com include:gone.example -all",
            "spf.protection.outlook.com": "v=spf1 ip4:40.92.0.0/15 -all",
            f"_dmarc.{D}": "v=DMARC1; p=reject",
        }
    )
    report = assess(facts("microsoft-365"), z)
    spf = report.check("spf")
    assert spf.verdict is Verdict.ERROR
    assert "gone.example (included) publishes no SPF record" in spf.explanation
    dmarc = report.check("dmarc")  # no DKIM either: nothing aligns
    assert dmarc.verdict is Verdict.ERROR
    assert dmarc.summary == "p=reject: mail will be rejected"
