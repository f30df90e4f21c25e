"""The admin's "Outgoing mail server" page in real Chromium against ``visitmail serve`` and a
real SMTP server (aiosmtpd with STARTTLS and AUTH, certificate from trustme): pick a preset,
point it at the server, see AUTH fail with the fix, correct the password, see every step
pass, save; the password never reaches the page; a reporter cannot open it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, screenshot
from tests.support.smtp_servers import Certificates
from tests.support.threaded_smtp import ThreadedSmtpServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

USERNAME = "sales@example.com"
RIGHT_PASSWORD = "Right-Smtp-Passw0rd-4821"
WRONG_PASSWORD = "Wrong-Smtp-Passw0rd-1357"
API = "/api/v1/smtp-settings"


def bearer(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


@pytest.fixture(scope="module")
def certs() -> Certificates:
    return Certificates.create()


@pytest.fixture
def smtp(certs: Certificates) -> Iterator[ThreadedSmtpServer]:
    with ThreadedSmtpServer(
        security="starttls", cert=certs.trusted_leaf, credentials=(USERNAME, RIGHT_PASSWORD)
    ) as running:
        yield running


@pytest.fixture
def restore_settings(server: Server) -> Iterator[None]:
    """Put the demo organization's settings (the dev inbox) back afterwards: other e2e
    tests deliver through them."""
    before = httpx.get(f"{server.url}{API}", headers=bearer(server), timeout=10)
    yield
    if before.status_code != 200:
        return
    out: dict[str, Any] = before.json()
    body = {
        k: v
        for k, v in out.items()
        if k not in ("password_set", "warnings", "updated_at", "updated_by")
    }
    body["password"] = None
    body["tls"] = {k: v for k, v in out["tls"].items() if k != "client_key_set"}
    body["proxy"] = {k: v for k, v in out["proxy"].items() if k != "password_set"}
    reply = httpx.put(f"{server.url}{API}", headers=bearer(server), json=body, timeout=10)
    assert reply.status_code == 200, reply.text


def log_in(page: Page, server: Server, email: str, password: str) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def run_test(page: Page) -> None:
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result .result")).to_be_visible(timeout=30_000)


def test_admin_configures_tests_and_saves_the_mail_server(
    page: Page,
    server: Server,
    smtp: ThreadedSmtpServer,
    certs: Certificates,
    restore_settings: None,
) -> None:
    log_in(page, server, server.admin_email, server.admin_password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Mail server").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Outgoing mail server")

    # A preset fills host, port and security and shows what to know about the provider.
    page.get_by_label("Provider preset").select_option("sendgrid")
    expect(page.get_by_label("Host", exact=True)).to_have_value("smtp.sendgrid.net")
    expect(page.get_by_label("Port", exact=True)).to_have_value("587")
    expect(page.get_by_label("STARTTLS", exact=True)).to_be_checked()
    expect(page.locator("#preset-note")).to_contain_text("Sender Authentication")
    expect(page.locator("#f-username-hint")).to_contain_text("apikey")
    expect(page.get_by_label("Username", exact=True)).to_have_value("apikey")

    # The port hint follows the security choice.
    page.get_by_label("TLS", exact=True).check()
    expect(page.locator("#f-port-hint")).to_contain_text("465")
    expect(page.get_by_label("Port", exact=True)).to_have_value("465")
    page.get_by_label("STARTTLS", exact=True).check()
    expect(page.locator("#f-port-hint")).to_contain_text("587")

    # Point it at the local server, trusting its CA; the password is wrong.
    page.get_by_label("Host", exact=True).fill(smtp.host)
    page.get_by_label("Port", exact=True).fill(str(smtp.port))
    page.get_by_label("Username", exact=True).fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(WRONG_PASSWORD)
    page.get_by_label("Sender address").fill("sales@example.com")
    page.get_by_label("Sender name").fill("Acme Sales")
    page.get_by_text("TLS certificates").click()  # open the section
    page.get_by_label("Custom CA (PEM)").fill(certs.trusted_ca_pem)
    page.get_by_label("Test recipient (optional)").fill("lead@example.org")

    run_test(page)
    auth = page.locator('#test-result li[data-step="auth"]')
    expect(auth).to_have_class(re.compile(r"\bfailed\b"))
    expect(auth.locator(".reply")).to_contain_text("535")
    expect(auth.locator(".fix")).to_contain_text("Fix:")
    expect(page.locator('#test-result li[data-step="tls"]')).to_have_class(
        re.compile(r"\bpassed\b")
    )
    expect(page.locator("#test-result .result")).to_contain_text("failed")
    assert WRONG_PASSWORD not in page.content()
    screenshot(page, "connection-test-failed")

    # The right password: every step passes, and the test message arrives.
    page.get_by_label("Password", exact=True).fill(RIGHT_PASSWORD)
    run_test(page)
    steps = page.locator("#test-result li.step")
    expect(page.locator("#test-result .result")).to_contain_text("Every step passed")
    assert steps.count() >= 8
    expect(page.locator("#test-result li.step.failed")).to_have_count(0)
    expect(page.locator("#test-result li.step.skipped")).to_have_count(0)
    expect(page.locator('#test-result li[data-step="auth"]')).to_have_class(
        re.compile(r"\bpassed\b")
    )
    assert any(m.rcpt_tos == ["lead@example.org"] for m in smtp.recorder.messages)
    screenshot(page, "connection-test")

    # Save: the page shows the password as stored, never the value.
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").first).to_contain_text("Settings saved")
    expect(page.locator("#f-password-state")).to_contain_text("stored")
    expect(page.get_by_label("Host", exact=True)).to_have_value(smtp.host)
    content = page.content()
    assert RIGHT_PASSWORD not in content and WRONG_PASSWORD not in content
    expect(page.locator("table").last).to_contain_text("password")  # audit: field names only
    screenshot(page, "smtp-settings")

    # A test after saving reuses the stored password (same host and username).
    run_test(page)
    expect(page.locator("#test-result .result")).to_contain_text("Every step passed")
    assert RIGHT_PASSWORD not in page.content()

    api = httpx.get(f"{server.url}{API}", headers=bearer(server), timeout=10).json()
    assert api["host"] == smtp.host and api["port"] == smtp.port and api["password_set"]
    assert RIGHT_PASSWORD not in str(api)


def test_field_error_is_shown_next_to_its_field(
    page: Page, server: Server, restore_settings: None
) -> None:
    log_in(page, server, server.admin_email, server.admin_password)
    page.goto(f"{server.url}/settings/smtp")
    page.get_by_label("Sender name").fill("Team")
    page.get_by_label("Port", exact=True).fill("70000")
    page.get_by_role("button", name="Save settings").click()
    port = page.get_by_label("Port", exact=True)
    expect(port).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-port-error")).to_contain_text("Port must be between 1 and 65535")
    expect(page.get_by_label("Sender name")).to_have_value("Team")
    expect(page.get_by_role("alert").first).to_contain_text("Not saved")


def test_reporter_cannot_open_the_page(browser: Browser, server: Server) -> None:
    email = f"reporter-{uuid.uuid4().hex[:8]}@example.com"
    password = "Reporter-Passw0rd-8842"
    made = httpx.post(
        f"{server.url}/api/v1/users",
        headers=bearer(server),
        json={"email": email, "role": "reporter", "password": password, "display_name": "Rita"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, server, email, password)
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Mail server")).to_have_count(0)
        response = page.goto(f"{server.url}/settings/smtp")
        assert response is not None and response.status == 403
        expect(page.get_by_role("alert")).to_contain_text("Only admins")
    finally:
        context.close()


def test_plain_port_without_starttls_gets_advice_and_autodetect_says_what_each_port_answered(
    page: Page, server: Server, restore_settings: None
) -> None:
    with ThreadedSmtpServer(security="none") as plain:
        log_in(page, server, server.admin_email, server.admin_password)
        page.goto(f"{server.url}/settings/smtp")
        page.get_by_label("Host", exact=True).fill(plain.host)
        page.get_by_label("Port", exact=True).fill(str(plain.port))
        page.get_by_label("STARTTLS", exact=True).check()
        page.get_by_label("Username", exact=True).fill("")
        page.get_by_label("Sender address").fill("sales@example.com")

        run_test(page)
        tls = page.locator('#test-result li[data-step="tls"]')
        expect(tls).to_have_class(re.compile(r"\bfailed\b"))
        expect(tls.locator(".explanation")).to_contain_text(
            f"Port {plain.port} speaks plain SMTP without STARTTLS"
        )
        # The advice ends: both ways forward, values shown as code, no literal backticks.
        fix = tls.locator(".fix")
        expect(fix).to_contain_text("465 with tls or 587 with starttls")
        expect(fix).to_contain_text(f"choose none for port {plain.port}")
        expect(fix).to_contain_text("trusted network")
        expect(fix.locator("code", has_text="none")).to_have_count(1)
        assert "`" not in fix.inner_text()

        page.get_by_role("button", name="Auto-detect").click()
        ports = page.locator("#port-answers")
        expect(ports).to_be_visible(timeout=30_000)
        expect(ports.locator('tr[data-answer="plain_no_starttls"] td').first).to_have_text(
            str(plain.port)
        )
        expect(ports).to_contain_text("plain SMTP without STARTTLS")
        expect(ports.locator("tbody tr")).to_have_count(5)  # 465, 587, the typed port, 25, 2525
        expect(page.locator("#autodetect-result")).to_contain_text(
            f"Recommended: port {plain.port} with none"
        )
        screenshot(page, "smtp-autodetect-plain-port")
