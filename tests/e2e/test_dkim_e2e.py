"""DKIM on the mail server page in Chromium: generate a key, read the record to publish,
select the key and turn signing on; the private key is never on the page."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, screenshot
from tests.e2e.test_smtp_settings_e2e import log_in

DKIM = "/api/v1/smtp-settings/dkim"


def bearer(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


@pytest.fixture
def signing_off_afterwards(server: Server) -> Iterator[None]:
    """Other e2e tests read the demo organization's mail: leave it unsigned again."""
    yield
    httpx.put(f"{server.url}{DKIM}", headers=bearer(server), json={"enabled": False}, timeout=10)


def test_admin_generates_a_key_sees_the_record_and_turns_signing_on(
    page: Page, server: Server, signing_off_afterwards: None
) -> None:
    selector = f"e2e{secrets.token_hex(3)}"
    log_in(page, server, server.admin_email, server.admin_password)
    page.goto(f"{server.url}/settings/smtp#dkim")
    expect(page.get_by_role("heading", name="DKIM signing")).to_be_visible()

    page.get_by_label("Selector", exact=True).fill("not.one.label")
    page.get_by_role("button", name="Generate key").click()
    expect(page.locator("#f-dkim-selector-error")).to_contain_text("one DNS label")
    expect(page.get_by_label("Selector", exact=True)).to_have_value("not.one.label")

    page.get_by_label("Algorithm").select_option("ed25519")
    page.get_by_label("Selector", exact=True).fill(selector)
    page.get_by_role("button", name="Generate key").click()
    expect(page.get_by_role("status").filter(has_text="Key generated")).to_be_visible()

    status = httpx.get(f"{server.url}{DKIM}", headers=bearer(server), timeout=10).json()
    key = next(k for k in status["keys"] if k["selector"] == selector)
    record = key["dns_record"]
    assert record["value"].startswith("v=DKIM1; k=ed25519; p=")
    section = page.locator("#dkim")
    if status["active_key_id"] == key["id"]:
        expect(section.locator("pre.copy").first).to_have_text(record["name"])
    else:  # the demo organization had a key already: a new one is only added
        section.get_by_text(f"Record for {selector}").click()
    expect(section.get_by_text(record["value"], exact=True).first).to_be_visible()

    page.locator(f'input[name="active_key_id"][value="{key["id"]}"]').check()
    page.get_by_label("Sign outgoing mail").check()
    page.get_by_role("button", name="Save DKIM choice").click()
    expect(page.get_by_role("status").filter(has_text="DKIM choice saved")).to_be_visible()
    expect(page.locator("#dkim-status")).to_contain_text("Outgoing mail is signed")
    expect(page.locator("#dkim-status")).to_contain_text(selector)
    after = httpx.get(f"{server.url}{DKIM}", headers=bearer(server), timeout=10).json()
    assert after["signing"] is True and after["active_key_id"] == key["id"]
    assert "PRIVATE KEY" not in page.content()
    screenshot(page, "dkim")
