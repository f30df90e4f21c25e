"""SPF parsing, lookup counting and the merged record, over hand-made DNS answers."""

from __future__ import annotations

import pytest

from visitmail.domain.dns_answers import DnsSnapshot, Lookup, LookupStatus
from visitmail.domain.spf import evaluate_spf, merged_spf, parse_spf

NX = Lookup(LookupStatus.NXDOMAIN)


class Zone(DnsSnapshot):
    """A complete snapshot: a name not listed does not exist (NXDOMAIN)."""

    def get_txt(self, name: str) -> Lookup:
        return self.txt.get(name, NX)

    def get_addresses(self, name: str) -> Lookup:
        return self.addresses.get(name, NX)

    def get_mx(self, name: str) -> Lookup:
        return self.mx.get(name, NX)


def zone(txt: dict[str, str], **addresses: str) -> Zone:
    return Zone(
        txt={k: Lookup.found(v) for k, v in txt.items()},
        addresses={k.replace("_", "."): Lookup.found(v) for k, v in addresses.items()},
    )


def test_parse_terms_qualifiers_and_modifiers() -> None:
    record = parse_spf("v=spf1 +a mx/24 -ip4:192.0.2.0/24 ~include:x.example redirect=y.example")
    assert [(t.qualifier, t.name, t.value) for t in record.terms] == [
        ("+", "a", None),
        ("+", "mx", "/24"),
        ("-", "ip4", "192.0.2.0/24"),
        ("~", "include", "x.example"),
        ("", "redirect", "y.example"),
    ]
    assert record.redirect == "y.example"
    assert record.problems == ()
    assert parse_spf("v=spf1 bogus -all").problems == ("unknown SPF term 'bogus' (permerror)",)


def test_lookups_are_counted_through_includes_and_redirect() -> None:
    snapshot = zone(
        {
            "d.example": "v=spf1 include:one.example redirect=two.example",
            "one.example": "v=spf1 a mx ptr exists:x.example ?all",
            "two.example": "v=spf1 include:three.example -all",
            "three.example": "v=spf1 ip4:192.0.2.1 -all",
        },
        one_example="192.0.2.5",
    )
    facts = evaluate_spf("d.example", snapshot)
    # include(1) + a, mx, ptr, exists (4) + redirect (1) + include (1) = 7
    assert facts.lookups == 7
    assert facts.all_qualifier == "-"  # the redirect's all ends the evaluation
    assert facts.includes == {"one.example", "two.example", "three.example"}
    assert facts.void_lookups == 1  # mx of one.example has no records
    assert not facts.permerror


def test_void_lookups_past_two_are_a_permanent_error() -> None:
    facts = evaluate_spf(
        "d.example", zone({"d.example": "v=spf1 a:n1.example a:n2.example a:n3.example -all"})
    )
    assert facts.void_lookups == 3
    assert facts.permerror
    assert "at most 2 are allowed" in facts.problems[-1]


def test_include_without_spf_record_and_loops_are_permanent_errors() -> None:
    missing = evaluate_spf("d.example", zone({"d.example": "v=spf1 include:gone.example -all"}))
    assert missing.problems == ["gone.example (included) publishes no SPF record (permerror)"]
    loop = evaluate_spf(
        "d.example",
        zone(
            {
                "d.example": "v=spf1 include:a.example -all",
                "a.example": "v=spf1 include:d.example ~all",
            }
        ),
    )
    assert loop.problems == ["include loop through d.example (permerror)"]


def test_coverage_of_addresses() -> None:
    snapshot = zone(
        {
            "d.example": "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a:mail.example/28 -ip4:198.51.100.1 -all"
        },
        mail_example="203.0.113.17",
    )
    facts = evaluate_spf("d.example", snapshot)
    assert facts.covers(["192.0.2.200"]) is True
    assert facts.covers(["2001:db8::25"]) is True
    assert facts.covers(["203.0.113.30"]) is True  # inside the /28 of mail.example
    assert facts.covers(["198.51.100.1"]) is False  # a fail term authorizes nothing
    assert facts.covers([]) is None  # no address to judge
    undecidable = evaluate_spf("d.example", zone({"d.example": "v=spf1 ptr -all"}))
    assert undecidable.covers(["192.0.2.1"]) is None


@pytest.mark.parametrize(
    ("existing", "add", "merged"),
    [
        ([], ["include:_spf.google.com"], "v=spf1 include:_spf.google.com -all"),
        (
            ["v=spf1 mx ~all"],
            ["include:sendgrid.net"],
            "v=spf1 mx include:sendgrid.net ~all",
        ),
        (
            ["v=spf1 a redirect=_spf.example"],
            ["include:sendgrid.net"],
            "v=spf1 a include:sendgrid.net redirect=_spf.example",
        ),
        (
            ["v=spf1 include:sendgrid.net -all"],
            ["include:sendgrid.net"],
            "v=spf1 include:sendgrid.net -all",
        ),
        (
            ["v=spf1 ip4:192.0.2.1 -all", "v=spf1 ip4:192.0.2.1 include:x.example ~all"],
            [],
            "v=spf1 ip4:192.0.2.1 include:x.example -all",
        ),
    ],
)
def test_merged_record(existing: list[str], add: list[str], merged: str) -> None:
    assert merged_spf(existing, add) == merged
