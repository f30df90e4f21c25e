"""The Suppressions page in Chromium, on a laptop (1366 px) and a phone (390 px): add an
address with a note, find it with the search box, page through the list, lift it after
the confirmation; nothing wider than the screen, rows stacked on the phone."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, open_menu, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def log_in(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{server.url}/")


def overflow(page: Page) -> int:
    width: int = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)], ids=["laptop", "phone"])
def test_add_find_page_and_lift(browser: Browser, server: Server, width: int, height: int) -> None:
    tag = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {server.token}"}
    for i in range(26):  # more than a page (25), all older than the one added below
        reply = httpx.post(
            f"{server.url}/api/v1/suppressions",
            headers=headers,
            json={"address": f"filler{i:02}-{tag}@example.org"},
        )
        assert reply.status_code == 201, reply.text

    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        log_in(page, server)
        open_menu(page)  # on a phone the navigation is behind the Menu button
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Suppressions").click()
        expect(page).to_have_url(f"{server.url}/suppressions")
        expect(page.get_by_role("heading", name="Suppressions", level=1)).to_be_visible()

        address = f"Lead-{tag}@Firma.local"
        page.get_by_label("Email address").fill(address)
        page.get_by_label("Note").fill("asked us by phone")
        page.get_by_role("button", name="Add to the list").click()
        expect(page.get_by_role("status")).to_contain_text(
            f"{address.lower()} is on the suppression list now."
        )
        assert "done=added" in page.url  # redirected: a reload adds nothing twice
        page.reload()
        expect(page.get_by_role("alert")).to_have_count(0)

        row = page.locator(f'tr[data-address="{address.lower()}"]')
        expect(row).to_contain_text("Added by hand.")
        expect(row).to_contain_text("Note: asked us by phone")
        assert overflow(page) <= 1, f"{overflow(page)}px wider than a {width}px screen"
        cells = row.locator("td")
        first, second = cells.nth(0).bounding_box(), cells.nth(1).bounding_box()
        assert first and second
        stacked = second["y"] >= first["y"] + first["height"] - 1
        assert stacked == (width < 700), (width, first, second)
        screenshot(page, f"suppressions-{width}")

        page.get_by_role("link", name="Older").click()
        expect(page.get_by_text(f"filler00-{tag}@example.org", exact=True)).to_be_visible()
        page.get_by_role("link", name="Newer").click()

        page.get_by_label("Address contains").fill(f"LEAD-{tag}")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#suppression-total")).to_contain_text("1 address match")
        row = page.locator(f'tr[data-address="{address.lower()}"]')
        confirm = row.get_by_role("button", name="Yes, lift")
        expect(confirm).to_be_hidden()  # asks first
        row.get_by_text("Lift…").click()
        expect(row).to_contain_text(f"Send follow-ups to {address.lower()} again?")
        assert overflow(page) <= 1
        confirm.click()
        expect(page.get_by_role("status")).to_contain_text("can receive follow-ups again.")
        expect(page.locator(f'tr[data-address="{address.lower()}"]')).to_have_count(0)
        expect(page.get_by_role("region", name="Recent changes")).to_contain_text(
            f"lifted {address.lower()}"
        )
        assert overflow(page) <= 1
    finally:
        context.close()
