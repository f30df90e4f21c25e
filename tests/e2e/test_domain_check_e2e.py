"""The "Sender domain" section of the mail server page in real Chromium: the admin checks a
domain whose DMARC rejects unaligned mail, reads the verdicts and the records to publish,
and the connection test's result lists the domain check without failing. DNS answers come
from the tests' loopback DNS server (``VISITMAIL_DNS_NAMESERVERS`` of the served app)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, screenshot
from tests.e2e.test_smtp_settings_e2e import log_in
from tests.support.dns_server import DnsTestServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

D = "fair-e2e.example"


def test_admin_checks_the_sender_domain(
    page: Page, server: Server, dns_server: DnsTestServer
) -> None:
    dns_server.serve(
        [
            (D, "TXT", "v=spf1 ip4:192.0.2.10 ~all"),
            (f"_dmarc.{D}", "TXT", "v=DMARC1; p=reject"),
        ]
    )
    log_in(page, server, server.admin_email, server.admin_password)
    page.goto(f"{server.url}/settings/smtp")
    section = page.locator("#sender-domain")
    section.get_by_label("Domain").fill(D)
    section.get_by_label("DKIM selectors").fill("vm1")
    section.get_by_role("button", name="Check sender domain").click()
    expect(section.get_by_role("status")).to_contain_text(f"Checked {D}")
    dkim = section.locator("#domain-dkim")
    expect(dkim).to_contain_text("error")
    expect(dkim).to_contain_text(f"vm1._domainkey.{D}")
    expect(section.locator("#domain-dmarc")).to_contain_text("p=reject")
    expect(section.get_by_role("table").nth(1)).to_contain_text("One-click unsubscribe")
    screenshot(page, "sender-domain-check")

    bad = page.locator("#sender-domain")
    bad.get_by_label("Domain").fill("not a domain")
    bad.get_by_role("button", name="Check sender domain").click()
    expect(page.locator("#sender-domain [role=alert]")).to_contain_text(
        "is not a valid domain name"
    )
