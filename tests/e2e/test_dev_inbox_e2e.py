"""The newcomer's first mail in real Chromium against ``visitmail serve --dev-inbox``: the
demo organization already sends through the local sink; the connection test's message
shows up in the Dev inbox for its admin and opens."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_the_connection_test_message_arrives_in_the_dev_inbox(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Mail server").click()
    expect(page.get_by_label("Port", exact=True)).to_have_value(str(server.dev_inbox_port))
    page.get_by_label("Test recipient (optional)").fill("newcomer@example.org")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator('#test-result li[data-step="send"]')).to_have_class(
        re.compile(r"\bpassed\b"), timeout=30_000
    )

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dev inbox").click()
    row = page.locator("tr", has_text="newcomer@example.org").first
    expect(row).to_be_visible()
    row.get_by_role("link", name="visitmail connection test").click()
    expect(page.locator("pre.mail-text")).to_contain_text("sent by visitmail's SMTP connection")
