"""A person logs in with real Chromium, sees the dashboard, adds a colleague, logs out."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def log_in(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Log in").click()


def test_wrong_password_shows_the_error_next_to_the_form(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill("definitely-wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("email or password is wrong")
    expect(page.get_by_label("Email")).to_have_value(server.admin_email)
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")


def test_admin_logs_in_adds_a_user_and_logs_out(page: Page, server: Server) -> None:
    log_in(page, server)
    expect(page.get_by_role("heading", level=1)).to_have_text("Demo organization")
    screenshot(page, "dashboard")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    page.get_by_label("Email", exact=True).fill("colleague@example.org")
    page.get_by_label("Role", exact=True).select_option("event_curator")
    page.get_by_role("button", name="Add user").click()
    # the name is required: it signs the colleague's follow-ups
    expect(page.locator("#new-name-error")).to_contain_text("must not be empty")
    expect(page.locator("#new-name")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Name", exact=True).fill("Carla Colleague")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_contain_text("colleague@example.org")
    expect(page.get_by_role("row", name=re.compile("colleague@example.org"))).to_contain_text(
        "Carla Colleague"
    )
    expect(page.locator("code.secret-once")).to_have_text(re.compile(r"^\S{5}-\S{5}-\S{5}-\S{5}$"))
    screenshot(page, "users")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{server.url}/login")
    page.goto(f"{server.url}/users")
    expect(page).to_have_url(f"{server.url}/login?next=/users")


def test_keyboard_reaches_the_login_form_with_visible_focus(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/login")
    expect(page.get_by_label("Email")).to_be_focused()  # autofocus
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Log in")).to_be_focused()


@pytest.mark.parametrize("width", [390, 1366])
def test_a_members_name_is_changed_in_its_row_on_a_phone_and_a_laptop(
    browser: Browser, server: Server, width: int
) -> None:
    email = f"named-{width}@example.org"
    made = httpx.post(
        f"{server.url}/api/v1/users",
        headers={"Authorization": f"Bearer {server.token}"},
        json={"email": email, "role": "reporter", "display_name": "Old Name"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    context = browser.new_context(viewport={"width": width, "height": 800})
    try:
        page = context.new_page()
        log_in(page, server)
        page.goto(f"{server.url}/users")
        overflow = page.evaluate(
            "Math.max(...[...document.querySelectorAll('body *')]"
            ".map(e => e.getBoundingClientRect().right)) - window.innerWidth"
        )
        assert overflow <= 1, f"/users is {overflow}px wider than a {width}px screen"
        name = page.get_by_label(f"Name of {email}")
        expect(name).to_have_value("Old Name")
        name.fill("New\u2028Name")
        row = page.get_by_role("row", name=re.compile(re.escape(email)))
        row.get_by_role("button", name="Save").click()
        expect(page.get_by_role("alert")).to_contain_text("control characters")
        expect(page.get_by_label(f"Name of {email}")).to_have_attribute("aria-invalid", "true")
        page.get_by_label(f"Name of {email}").fill("Nora New")
        page.get_by_role("row", name=re.compile(re.escape(email))).get_by_role(
            "button", name="Save"
        ).click()
        expect(page.get_by_role("row", name=re.compile(re.escape(email)))).to_contain_text(
            "Nora New"
        )
    finally:
        context.close()
