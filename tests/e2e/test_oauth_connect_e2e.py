"""The browser sign-in in real Chromium: the admin chooses OAuth2 + Microsoft 365 on the mail
server page (forms only), clicks "Connect Microsoft 365", meets the local provider's consent
page, clicks Allow, lands back on the page "connected", and runs the connection test whose
token, scope and auth steps pass against an aiosmtpd XOAUTH2 server. A second test clicks
Deny and sees the explanation with its fix. Both pages fit a 390 px screen.

This module starts its own ``visitmail serve`` (SQLite), whose Microsoft endpoint is the
local provider (``VISITMAIL_OAUTH_MICROSOFT_AUTHORITY``) and whose public URL is its own
address (``VISITMAIL_PUBLIC_URL``). The test SMTP server speaks without TLS on loopback, so
the operator allows plain-text authentication for this server only."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot, serving
from tests.support.dns_server import DnsTestServer
from tests.support.oauth_provider import OAuthProvider, start_oauth_provider
from tests.support.oauth_smtp import OAuthSmtpServer, start_oauth_smtp_server
from tests.support.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "e2e-ms-app"
CLIENT_SECRET = "E2e~Client~Secret~Value~31"
MAILBOX = "sales@contoso.com"


@dataclass(frozen=True)
class OAuthServer:
    url: str
    admin_email: str
    admin_password: str
    provider: OAuthProvider
    smtp_port: int
    log: Path  # the serve process's output


class ThreadedOAuthSmtp:
    """The XOAUTH2 aiosmtpd server on its own loop in a thread (Playwright's sync API owns
    the main thread's loop)."""

    def __init__(self, provider: OAuthProvider) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._provider = provider
        self.server: OAuthSmtpServer | None = None

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    def __enter__(self) -> ThreadedOAuthSmtp:
        self._thread.start()
        self.server = self._run(start_oauth_smtp_server(self._provider))
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.server is not None:
            self._run(self.server.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture(scope="module")
def oauth_server(
    tmp_path_factory: pytest.TempPathFactory, dns_server: DnsTestServer
) -> Iterator[OAuthServer]:
    provider = start_oauth_provider()
    smtp = ThreadedOAuthSmtp(provider).__enter__()
    tmp = tmp_path_factory.mktemp("e2e-oauth")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    provider.register_client(CLIENT_ID, CLIENT_SECRET)
    provider.register_redirect_uri(CLIENT_ID, f"{url}/settings/smtp/oauth/callback")
    try:
        with serving(
            tmp,
            dns_server,
            port=str(port),
            VISITMAIL_SMTP_ALLOWED_NETWORKS="127.0.0.0/8",
            VISITMAIL_ALLOW_PLAINTEXT_AUTH="true",
            VISITMAIL_PUBLIC_URL=url,
            VISITMAIL_OAUTH_MICROSOFT_AUTHORITY=provider.base_url,
            VISITMAIL_OAUTH_GOOGLE_TOKEN_URL=provider.google_url,
            VISITMAIL_OAUTH_GOOGLE_AUTHORIZATION_URL=provider.google_authorize_url,
        ) as started:
            assert smtp.server is not None
            yield OAuthServer(
                url,
                started.admin_email,
                started.admin_password,
                provider,
                smtp.server.port,
                started.log,
            )
    finally:
        smtp.__exit__()
        provider.close()


def log_in(page: Page, server: OAuthServer) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Log in").click()
    # logged in: the header has "Log out" (behind the Menu button on a phone)
    expect(page.locator("header form.logout")).to_be_attached()


def overflow(page: Page) -> int:
    width: int = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


def choose_microsoft_oauth(page: Page, server: OAuthServer) -> None:
    """The mail server page, by its forms: the test SMTP server, OAuth2, Microsoft 365."""
    page.goto(f"{server.url}/settings/smtp")
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("None").check()
    page.get_by_label("Port", exact=True).fill(str(server.smtp_port))
    page.get_by_label("Username", exact=True).fill(MAILBOX)
    page.get_by_label("Sender address", exact=True).fill(MAILBOX)
    page.get_by_label("Authentication method").select_option("oauth2")
    oauth = page.locator("#oauth-fields")
    expect(oauth).to_be_visible()
    page.get_by_label("OAuth provider").select_option("microsoft365_delegated")
    page.get_by_label("Client (application) id").fill(CLIENT_ID)
    page.get_by_label("Tenant (directory) id").fill(TENANT)
    page.get_by_label("Client secret", exact=True).fill(CLIENT_SECRET)
    expect(page.get_by_label("Token URL")).to_be_hidden()  # generic only
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()


def test_connect_microsoft_365_allow_then_the_connection_test_passes(
    page: Page, oauth_server: OAuthServer
) -> None:
    page.set_viewport_size({"width": 1366, "height": 900})
    log_in(page, oauth_server)
    choose_microsoft_oauth(page, oauth_server)
    panel = page.locator("#oauth-connect")
    expect(panel).to_contain_text("not connected")
    redirect = f"{oauth_server.url}/settings/smtp/oauth/callback"
    expect(page.get_by_label("Redirect URI to register in the app")).to_have_value(redirect)

    page.get_by_role("button", name="Connect Microsoft 365").click()
    expect(page.locator("#consent-text")).to_have_text(
        f"visitmail wants to send mail as {MAILBOX}."
    )
    assert page.url.startswith(f"{oauth_server.provider.base_url}/{TENANT}/oauth2/v2.0/authorize")
    assert "code_challenge=" in page.url and "code_verifier" not in page.url
    page.get_by_role("button", name="Allow").click()

    expect(page.locator("#oauth-connected")).to_contain_text(
        f"Connected {MAILBOX} with Microsoft 365"
    )
    assert page.url == f"{oauth_server.url}/settings/smtp?connected=1"
    expect(page.locator("#oauth-status")).to_contain_text(f"connected as {MAILBOX}")
    expect(page.get_by_role("button", name="Reconnect Microsoft 365")).to_be_visible()

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result .result")).to_have_text(
        "Every step passed: the server accepts these settings.", timeout=30_000
    )
    for step in ("token", "scope", "auth"):
        expect(page.locator(f'#test-result li[data-step="{step}"]')).to_have_class(
            re.compile(r"\bpassed\b")
        )
    screenshot(page, "oauth-connected")

    html = page.content()
    stored = [t for t in oauth_server.provider.refresh_tokens] + list(
        oauth_server.provider.access_tokens
    )
    assert stored and not any(t in html for t in stored)
    assert CLIENT_SECRET not in html
    served = oauth_server.log.read_text()
    assert not any(t in served for t in stored)
    assert CLIENT_SECRET not in served
    codes = oauth_server.provider.issued_codes
    assert codes and not any(c in served for c in codes)
    assert "/settings/smtp/oauth/callback?[redacted]" in served  # the access log, scrubbed

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#oauth-connect")).to_be_visible()
    assert overflow(page) <= 1, f"the mail server page is {overflow(page)}px too wide"
    screenshot(page, "oauth-connected-390")


def test_deny_on_the_consent_page_shows_the_explanation(
    page: Page, oauth_server: OAuthServer
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, oauth_server)
    choose_microsoft_oauth(page, oauth_server)
    assert overflow(page) <= 1, f"the mail server page is {overflow(page)}px too wide"
    page.get_by_role("button", name=re.compile(r"(Re)?[cC]onnect Microsoft 365")).click()
    page.get_by_role("button", name="Deny").click()

    expect(page.get_by_role("heading", name="Mailbox not connected")).to_be_visible()
    expect(page.locator("#oauth-error-message")).to_contain_text("the consent was refused")
    expect(page.locator("#oauth-error-message")).to_contain_text("AADSTS65004")
    expect(page.locator("#oauth-error-fix")).to_contain_text("grant admin consent")
    assert overflow(page) <= 1, f"the error page is {overflow(page)}px too wide"
    screenshot(page, "oauth-denied-390")
    page.get_by_role("link", name="Back to the mail server page").click()
    expect(page.get_by_role("heading", name="Outgoing mail server")).to_be_visible()
