"""Every page works on a laptop, on a tablet and on a phone (390 px): nothing wider than
the screen, the navigation reachable, focus visible."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

PAGES = [
    "/",
    "/users",
    "/settings/smtp",
    "/outbox",
    "/suppressions",
    "/mapping",
    "/events",
    "/reports",
    "/dev-inbox",
]


@pytest.mark.parametrize(
    ("width", "height"),
    [(1366, 768), (820, 1180), (390, 844)],
    ids=["laptop", "tablet-portrait", "phone"],
)
def test_pages_fit_the_screen(browser: Browser, server: Server, width: int, height: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login")
        page.get_by_label("Email").fill(server.admin_email)
        page.get_by_label("Password").fill(server.admin_password)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{server.url}/")
        for path in PAGES:
            page.goto(f"{server.url}{path}")
            assert page.locator("h1").first.is_visible(), path
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} is {overflow}px wider than a {width}px screen"
            nav = page.get_by_role("navigation", name="Main")
            expect(nav).to_be_visible()
    finally:
        context.close()


def test_keyboard_focus_is_visible_in_the_navigation(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login")
        page.get_by_label("Email").fill(server.admin_email)
        page.get_by_label("Password").fill(server.admin_password)
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{server.url}/")
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.outerHTML")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert "<a" in focused
        assert outline not in ("none", "")
    finally:
        context.close()
