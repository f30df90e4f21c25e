"""End-to-end fixtures: a real ``visitmail serve`` process and Debian's Chromium driven by
Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.dns_server import DnsTestServer
from tests.support.processes import VISITMAIL, cli_env, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@dataclass(frozen=True)
class Server:
    url: str
    admin_email: str
    admin_password: str
    token: str
    dev_inbox_port: int
    # For ``visitmail`` commands against the same database (``run_cli(args, env, cwd)``).
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = Path()
    log: Path = Path()  # the serve process's output


@contextmanager
def serving(tmp: Path, dns_server: DnsTestServer, **settings: str) -> Iterator[Server]:
    """``visitmail serve --dev-inbox`` on a new SQLite database in ``tmp`` with ``settings``
    as extra environment (``VISITMAIL_…``); yields once ``/healthz`` answers, with the
    first-start admin's password and API token, and stops the process on exit. The sender
    domain check asks the loopback ``dns_server``; the serve output is ``server.log``."""
    port = int(settings.pop("port", "0")) or free_port()
    inbox_port = int(settings.get("VISITMAIL_DEV_INBOX_PORT", "0")) or free_port()
    env = cli_env(
        tmp,
        f"sqlite:///{tmp / 'e2e.db'}",
        **{
            "VISITMAIL_DEV_INBOX_PORT": str(inbox_port),
            "VISITMAIL_DNS_NAMESERVERS": f"127.0.0.1:{dns_server.port}",
            **settings,
        },
    )
    log_path = tmp / "serve.log"
    log = log_path.open("w+")
    proc = subprocess.Popen(
        [*VISITMAIL, "serve", "--dev-inbox", "--port", str(port)],
        env=env,
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts slowly; a quiet one in ~2 s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("visitmail serve did not start")
        log.seek(0)
        output = log.read()
        password = re.search(r"password:\s+(\S+)", output)
        token = re.search(r"API token:\s+(\S+)", output)
        assert password and token, output
        yield Server(
            url,
            "admin@example.com",
            password.group(1),
            token.group(1),
            inbox_port,
            env=env,
            cwd=tmp,
            log=log_path,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, dns_server: DnsTestServer) -> Iterator[Server]:
    """``visitmail serve --dev-inbox`` on SQLite with its first-start demo organization."""
    # The tests' own SMTP servers listen on loopback ports of their own: the operator
    # allows loopback (--dev-inbox alone opens only the dev inbox's port).
    with serving(
        tmp_path_factory.mktemp("e2e"), dns_server, VISITMAIL_SMTP_ALLOWED_NETWORKS="127.0.0.0/8"
    ) as started:
        yield started


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running on the
    # main thread while it is open, which would break every async test that runs later.
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    yield pg
    context.close()


def open_menu(page: Page) -> None:
    """Open the header's "Menu" on a screen up to 800 px wide, where the navigation, the
    account link and "Log out" sit behind it; does nothing where they show anyway."""
    button = page.get_by_role("button", name="Menu")
    if button.is_visible() and button.get_attribute("aria-expanded") != "true":
        button.click()


def api(server: Server, method: str, path: str, body: Any = None) -> Any:
    """One API call as the first-start admin (what the phone app does, or a read for an
    assertion); ``path`` under ``/api/v1`` unless it starts with ``/api/``. Asserts a 200
    or 201 and returns the JSON."""
    url = f"{server.url}{path if path.startswith('/api/') else '/api/v1' + path}"
    reply = httpx.request(
        method, url, headers={"Authorization": f"Bearer {server.token}"}, json=body, timeout=30
    )
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot; with VISITMAIL_UPDATE_SCREENSHOTS=1 into docs/ for the README."""
    target = SCREENSHOTS if os.environ.get("VISITMAIL_UPDATE_SCREENSHOTS") else ARTIFACTS
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
