"""The Relay webhooks page in Chromium, on a laptop (1366 px) and a phone (390 px): reached
from the mail server page, create a Mailgun endpoint (the URL shown once, nothing wider
than the screen), set the signing key, send the self-test, delete after the confirmation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import Server, screenshot
from tests.e2e.test_suppressions_e2e import log_in, overflow

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)], ids=["laptop", "phone"])
def test_create_configure_self_test_delete(
    browser: Browser, server: Server, width: int, height: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        log_in(page, server)
        page.goto(f"{server.url}/settings/smtp")
        page.get_by_role("link", name="Relay webhooks").click()
        expect(page.get_by_role("heading", name="Relay webhooks", level=1)).to_be_visible()

        page.get_by_label("Relay").select_option("mailgun")
        page.get_by_role("button", name="Create endpoint").click()
        url = page.locator("#shown-url")
        expect(url).to_contain_text("/api/v1/relay-webhooks/mailgun/")
        assert overflow(page) <= 1, f"{overflow(page)}px wider than a {width}px screen"
        screenshot(page, f"relay-webhooks-created-{width}")

        card = page.locator("#relay-mailgun")
        card.get_by_label("HTTP webhook signing key").fill("key-e2e-signing-key-0123")
        card.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("Verification data saved.")
        expect(page.locator("#shown-url")).to_have_count(0)  # shown once

        page.locator("#relay-mailgun").get_by_role("button", name="Send a test event").click()
        expect(page.locator("#self-test-result")).to_contain_text("1 unmatched")
        row = page.locator('tr[data-provider="mailgun"]')
        expect(row).to_contain_text("1 not ours")
        assert overflow(page) <= 1, f"{overflow(page)}px wider than a {width}px screen"
        cells = row.locator("td")
        first, second = cells.nth(0).bounding_box(), cells.nth(1).bounding_box()
        assert first and second
        assert (second["y"] >= first["y"] + first["height"] - 1) == (width < 700)
        screenshot(page, f"relay-webhooks-{width}")

        card = page.locator("#relay-mailgun")
        card.get_by_text("Delete…").click()
        card.get_by_role("button", name="Yes, delete").click()
        expect(page.get_by_role("status")).to_contain_text("Endpoint deleted")
        expect(page.locator('tr[data-provider="mailgun"]')).to_have_count(0)
    finally:
        context.close()
