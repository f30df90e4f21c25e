"""The sender-domain check over HTTP, on both databases: ``GET /api/v1/smtp-settings/
domain-check``, the ``domain`` block of the connection test, and the section of the mail
server page. The app's resolver asks the loopback DNS server of ``tests/support``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.dns.test_sender_domain_check import (
    GOOGLE_SPF,
    KEY,
    M365_SPF,
    SENDGRID_SPF,
    m365_zone,
)
from tests.integration.web.test_smtp_settings_api import FakeDiagnoser, settings_body
from tests.integration.web.test_ui_login import log_in
from tests.support.dns_server import DnsTestServer
from tests.support.orgs import OrgFixture, new_member
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime

URL = "/api/v1/smtp-settings"
D = "acme-fair.example"


def body(preset: str | None, host: str, **extra: Any) -> dict[str, Any]:
    return settings_body(
        preset=preset, host=host, sender_email=f"sales@{D}", username=f"sales@{D}", **extra
    )


async def save(client: httpx.AsyncClient, org: OrgFixture, json: dict[str, Any]) -> None:
    reply = await client.put(URL, headers=org.headers, json=json)
    assert reply.status_code == 200, reply.text


@pytest.fixture
def diagnoser(app: FastAPI) -> Iterator[FakeDiagnoser]:
    fake = FakeDiagnoser()
    app.state.diagnoser = fake
    try:
        yield fake
    finally:
        app.state.diagnoser = None


async def test_stored_settings_with_correct_records_are_ok(
    client: httpx.AsyncClient, org: OrgFixture, dns_server: DnsTestServer
) -> None:
    await save(client, org, body("microsoft-365", "smtp.office365.com"))
    dns_server.serve(m365_zone())
    reply = await client.get(f"{URL}/domain-check", headers=org.headers)
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["domain"] == D
    assert report["provider"] == "microsoft-365"
    assert report["provider_name"] == "Microsoft 365"
    assert report["verdict"] == "ok"
    assert [(c["name"], c["verdict"]) for c in report["checks"]] == [
        ("spf", "ok"),
        ("dkim", "ok"),
        ("dmarc", "ok"),
    ]
    assert report["bulk_applies"] is None  # no daily limit saved
    assert [b["name"] for b in report["bulk"]] == [
        "SPF",
        "DKIM",
        "DMARC",
        "Alignment",
        "One-click unsubscribe",
    ]
    assert ("acme-fair.example", "TXT") in dns_server.queries


async def test_missing_include_answers_the_merged_record(
    client: httpx.AsyncClient, org: OrgFixture, dns_server: DnsTestServer
) -> None:
    await save(client, org, body("google-workspace", "smtp.gmail.com", limits={"per_day": 20_000}))
    dns_server.serve(
        [
            (D, "TXT", "v=spf1 ip4:192.0.2.10 ~all"),
            (f"google._domainkey.{D}", "TXT", KEY),
            (f"_dmarc.{D}", "TXT", "v=DMARC1; p=reject"),
            GOOGLE_SPF,
        ]
    )
    report = (await client.get(f"{URL}/domain-check", headers=org.headers)).json()
    spf = report["checks"][0]
    assert spf["verdict"] == "error"
    assert spf["records"] == [
        {
            "action": "replace",
            "type": "TXT",
            "name": D,
            "value": "v=spf1 ip4:192.0.2.10 include:_spf.google.com ~all",
            "replaces": ["v=spf1 ip4:192.0.2.10 ~all"],
            "note": None,
        }
    ]
    assert report["bulk_applies"] is True
    assert report["verdict"] == "error"


async def test_domain_and_selectors_in_the_query(
    client: httpx.AsyncClient, org: OrgFixture, dns_server: DnsTestServer
) -> None:
    # No settings saved: a domain must be given, no provider is assumed.
    unsaved = await client.get(f"{URL}/domain-check", headers=org.headers)
    assert unsaved.status_code == 404
    assert unsaved.json()["error"]["code"] == "not_configured"
    dns_server.serve(
        [
            ("other.example", "TXT", "v=spf1 include:spf.protection.outlook.com -all"),
            M365_SPF,
            ("vm1._domainkey.other.example", "TXT", KEY),
        ]
    )
    reply = await client.get(
        f"{URL}/domain-check",
        headers=org.headers,
        params={"domain": "Other.Example.", "selector": ["vm1", "vm2"]},
    )
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["domain"] == "other.example"
    assert report["provider"] is None
    dkim = report["checks"][1]
    assert dkim["details"]["selectors"] == ["vm1", "vm2"]
    assert dkim["verdict"] == "warning"  # vm2 was asked for and is missing
    assert dkim["records"][0]["name"] == "vm2._domainkey.other.example"
    assert report["checks"][2]["summary"] == "no DMARC record"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"domain": "not a domain"}, "domain"),
        ({"domain": "192.0.2.1"}, "domain"),
        ({"domain": "x" * 301}, "domain"),
        ({"domain": "example.com", "selector": ["bad/selector"]}, "selector"),
        ({"domain": "example.com", "selector": [f"s{i}" for i in range(11)]}, "selector"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, org: OrgFixture, params: dict[str, Any], field: str
) -> None:
    reply = await client.get(f"{URL}/domain-check", headers=org.headers, params=params)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == field


async def test_only_admins_check_the_domain(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    _user, token = await new_member(runtime, org, Role.EVENT_MANAGER)
    reply = await client.get(
        f"{URL}/domain-check",
        headers={"Authorization": f"Bearer {token}"},
        params={"domain": "example.com"},
    )
    assert reply.status_code == 403
    anonymous = await client.get(f"{URL}/domain-check", params={"domain": "example.com"})
    assert anonymous.status_code == 401


async def test_connection_test_reports_the_domain_without_failing(
    client: httpx.AsyncClient,
    org: OrgFixture,
    dns_server: DnsTestServer,
    diagnoser: FakeDiagnoser,
) -> None:
    await save(client, org, body("sendgrid", "smtp.sendgrid.net"))
    dns_server.serve(
        [
            (D, "TXT", "v=spf1 include:sendgrid.net -all"),
            SENDGRID_SPF,
            (f"_dmarc.{D}", "TXT", "v=DMARC1; p=reject"),
        ]
    )
    reply = await client.post(f"{URL}/test", headers=org.headers, json={})
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["ok"] is True  # the SMTP steps passed; the domain check is informative
    assert set(result) == {"ok", "steps", "warnings", "domain"}
    assert [s["name"] for s in result["steps"]] == ["resolve", "connect", "auth", "send"]
    dmarc = result["domain"]["checks"][2]
    assert dmarc["verdict"] == "error"
    assert dmarc["summary"] == "p=reject: mail will be rejected"
    assert [r["name"] for r in dmarc["records"]] == [f"s1._domainkey.{D}", f"s2._domainkey.{D}"]

    with_selector = await client.post(
        f"{URL}/test", headers=org.headers, json={"dkim_selectors": ["s1", "Bad Selector"]}
    )
    assert with_selector.status_code == 422
    assert with_selector.json()["error"]["field"] == "dkim_selectors"


async def test_connection_test_of_an_uncheckable_domain_warns(
    client: httpx.AsyncClient, org: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    await save(
        client,
        org,
        settings_body(sender_email="postmaster@mailhub", username="postmaster@mailhub"),
    )
    result = (await client.post(f"{URL}/test", headers=org.headers, json={})).json()
    assert result["ok"] is True
    assert result["domain"] is None
    assert any("mailhub cannot be checked in DNS" in w for w in result["warnings"])


async def test_the_mail_server_page_shows_the_domain_section(
    client: httpx.AsyncClient, org: OrgFixture, dns_server: DnsTestServer
) -> None:
    await save(client, org, body("google-workspace", "smtp.gmail.com"))
    dns_server.serve(
        [
            (D, "TXT", "v=spf1 include:_spf.google.com ~all"),
            GOOGLE_SPF,
            (f"_dmarc.{D}", "TXT", "v=DMARC1; p=none"),
        ]
    )
    logged_in = await log_in(client, org.admin.email, org.admin_password)
    assert logged_in.status_code in (302, 303)
    plain = await client.get("/settings/smtp")
    assert plain.status_code == 200
    assert "Sender domain (SPF, DKIM, DMARC)" in plain.text
    assert 'id="domain-spf"' not in plain.text  # the check runs when asked
    page = await client.get("/settings/smtp", params={"domain_check": "1"})
    assert page.status_code == 200
    html = page.text
    assert f"Checked <strong>{D}</strong> for mail sent through Google Workspace" in html
    assert 'id="domain-dkim"' in html
    assert "no DKIM key published" in html
    assert f"google._domainkey.{D}" in html
    assert "v=DKIM1; k=rsa; p=&lt;public key&gt;" in html
    assert "Bulk-sender requirements" in html
    bad = await client.get("/settings/smtp", params={"domain_check": "1", "domain": "bad domain"})
    assert bad.status_code == 200
    assert "is not a valid domain name" in bad.text


async def test_the_pages_connection_test_answers_the_domain_block(
    client: httpx.AsyncClient,
    org: OrgFixture,
    dns_server: DnsTestServer,
    diagnoser: FakeDiagnoser,
) -> None:
    from tests.integration.web.test_smtp_pages import admin_page, form_body

    dns_server.serve(m365_zone())
    _page, csrf = await admin_page(client, org)
    reply = await client.post(
        "/settings/smtp/test",
        data=form_body(
            csrf,
            preset="microsoft-365",
            host="smtp.office365.com",
            sender_email=f"sales@{D}",
            username=f"sales@{D}",
        ),
    )
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["ok"] is True
    assert result["domain"]["verdict"] == "ok"
    assert result["domain"]["provider"] == "microsoft-365"
    streamed = await client.post(
        "/settings/smtp/test",
        data=form_body(csrf, sender_email=f"sales@{D}", username=f"sales@{D}"),
        headers={"accept": "application/x-ndjson"},
    )
    last = streamed.text.strip().splitlines()[-1]
    assert '"report"' in last
    assert f'"domain": "{D}"' in last


async def test_the_check_looks_up_the_selector_of_visitmails_own_dkim_key(
    client: httpx.AsyncClient, org: OrgFixture, dns_server: DnsTestServer
) -> None:
    """An organization that lets visitmail sign: the check asks DNS for that key's
    record without being told the selector, and says what to publish while it is missing."""
    await save(client, org, body("sendgrid", "smtp.sendgrid.net"))
    made = await client.post(f"{URL}/dkim", headers=org.headers, json={"selector": "vmown"})
    assert made.status_code == 201, made.text
    record = made.json()["dns_record"]
    assert record["name"] == f"vmown._domainkey.{D}"
    base = [
        (D, "TXT", "v=spf1 include:sendgrid.net ~all"),
        SENDGRID_SPF,
        (f"_dmarc.{D}", "TXT", "v=DMARC1; p=none"),
    ]

    dns_server.serve(base)
    missing = (await client.get(f"{URL}/domain-check", headers=org.headers)).json()["checks"][1]
    assert "vmown" in missing["details"]["selectors"]
    assert missing["verdict"] in {"warning", "error"}
    assert f"vmown._domainkey.{D}" in [r["name"] for r in missing["records"]]

    dns_server.serve([*base, (record["name"], "TXT", record["value"])])
    published = (await client.get(f"{URL}/domain-check", headers=org.headers)).json()
    dkim = published["checks"][1]
    assert "vmown" in dkim["details"]["selectors"]
    assert f"vmown._domainkey.{D}" not in [r["name"] for r in dkim["records"]]
    assert (f"vmown._domainkey.{D}", "TXT") in dns_server.queries
