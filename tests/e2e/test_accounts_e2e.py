"""Accounts in real Chromium, on a laptop and on a phone: a user changes their password
through the form; an admin resets a user's password and the user logs in with the
one-time password and is made to choose a new one; the login returns to the page asked
for; no page is wider than the screen."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, open_menu, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SIZES = pytest.mark.parametrize(
    ("width", "height"), [(1366, 768), (390, 844)], ids=["laptop", "phone"]
)
FIRST = "first password 1234"
SECOND = "second password 5678"


def new_user(server: Server, role: str = "user") -> str:
    """A user of the demo organization with the password :data:`FIRST`; their email."""
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.org"
    reply = httpx.post(
        f"{server.url}/api/v1/users",
        headers={"Authorization": f"Bearer {server.token}"},
        json={"email": email, "role": role, "display_name": "Paula Phone", "password": FIRST},
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    return email


def log_in(page: Page, server: Server, email: str, password: str, path: str = "/login") -> None:
    page.goto(f"{server.url}{path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def fits(page: Page, width: int) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} is {overflow}px wider than a {width}px screen"


@SIZES
def test_a_user_changes_their_password_through_the_form(
    browser: Browser, server: Server, width: int, height: int
) -> None:
    email = new_user(server)
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        # asked for a page while logged out: the login returns there
        page.goto(f"{server.url}/reports")
        expect(page).to_have_url(f"{server.url}/login?next=/reports")
        log_in(page, server, email, FIRST, path="/login?next=/reports")
        expect(page).to_have_url(f"{server.url}/reports")

        open_menu(page)  # on a phone the account link is in the header's menu
        page.get_by_role("link", name=email).click()  # the account link in the header
        expect(page.get_by_role("heading", level=1)).to_have_text("Change your password")
        fits(page, width)
        page.get_by_label("Current password").fill(FIRST)
        page.get_by_label("New password", exact=True).fill(SECOND)
        page.get_by_label("New password again").fill(SECOND + "!")
        page.get_by_role("button", name="Change password").click()
        error = page.locator("#new-password-confirm-error")
        expect(error).to_contain_text("does not match the new password")
        expect(page.get_by_label("New password again")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("New password", exact=True)).to_have_value("")  # not echoed
        fits(page, width)

        page.get_by_label("Current password").fill(FIRST)
        page.get_by_label("New password", exact=True).fill(SECOND)
        page.get_by_label("New password again").fill(SECOND)
        page.get_by_role("button", name="Change password").click()
        expect(page).to_have_url(f"{server.url}/account/password?done=changed")
        expect(page.get_by_role("status")).to_contain_text("Your password was changed")
        fits(page, width)
        screenshot(page, f"account-password-{width}")

        open_menu(page)
        page.get_by_role("button", name="Log out").click()
        log_in(page, server, email, FIRST)
        expect(page.get_by_role("alert")).to_contain_text("email or password is wrong")
        log_in(page, server, email, SECOND)
        expect(page).to_have_url(f"{server.url}/")
    finally:
        context.close()


@SIZES
def test_an_admin_resets_a_password_and_the_user_must_change_it(
    browser: Browser, server: Server, width: int, height: int
) -> None:
    email = new_user(server, role="event_curator")
    admin = browser.new_context(viewport={"width": width, "height": height})
    person = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = admin.new_page()
        log_in(page, server, server.admin_email, server.admin_password, path="/login?next=/users")
        expect(page).to_have_url(f"{server.url}/users")
        expect(page.locator("#role-event_curator")).to_contain_text("bulk follow-ups")
        fits(page, width)
        row = page.get_by_role("row", name=re.compile(re.escape(email)))
        row.get_by_text("Reset password…").click()
        row.get_by_role("button", name="Yes, reset the password").click()
        notice = page.locator("#reset-notice")
        expect(notice).to_contain_text(email)
        one_time = page.locator("#reset-notice code.secret-once").inner_text().strip()
        assert re.fullmatch(r"\S{5}-\S{5}-\S{5}-\S{5}", one_time)
        expect(page.get_by_role("row", name=re.compile(re.escape(email)))).to_contain_text(
            "must change password"
        )
        fits(page, width)
        screenshot(page, f"users-reset-{width}")
        page.reload()  # shown once
        expect(page.locator("#reset-notice")).to_have_count(0)

        me = person.new_page()
        log_in(me, server, email, FIRST)
        expect(me.get_by_role("alert")).to_contain_text("email or password is wrong")
        log_in(me, server, email, one_time, path="/login?next=/outbox")
        expect(me).to_have_url(f"{server.url}/account/password?next=/outbox")
        expect(me.locator("#password-forced")).to_contain_text("An admin reset your password")
        fits(me, width)
        second = browser.new_context(viewport={"width": width, "height": height})
        try:  # a second login with the one-time password is refused
            again = second.new_page()
            log_in(again, server, email, one_time)
            expect(again.get_by_role("alert")).to_contain_text("used already")
        finally:
            second.close()
        me.goto(f"{server.url}/events")  # nothing else opens until the password is changed
        expect(me).to_have_url(f"{server.url}/account/password?next=/events")
        me.get_by_label("One-time password from your admin").fill(one_time)
        me.get_by_label("New password", exact=True).fill(SECOND)
        me.get_by_label("New password again").fill(SECOND)
        me.get_by_role("button", name="Change password").click()
        expect(me.get_by_role("status")).to_contain_text("Your password was changed")
        me.get_by_role("link", name="Continue to the page you asked for").click()
        expect(me).to_have_url(f"{server.url}/events")
        expect(me.get_by_role("heading", level=1)).to_be_visible()
        fits(me, width)

        open_menu(page)
        page.get_by_role("button", name="Log out").click()
        log_in(page, server, email, one_time)  # and the old one-time password is gone
        expect(page.get_by_role("alert")).to_contain_text("email or password is wrong")
    finally:
        admin.close()
        person.close()
