"""``serve --dev-inbox``: mail sent to the local sink shows up on the dev inbox page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from tests.integration.web.test_ui_login import log_in
from tests.support.orgs import OrgFixture
from tests.support.processes import free_port
from visitmail.adapters.devinbox.sink import DevInbox
from visitmail.runtime import Runtime
from visitmail.web.app import create_app


@pytest.fixture
async def inbox_client(
    runtime: Runtime, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, DevInbox]]:
    inbox = DevInbox(tmp_path / "inbox", port=free_port())
    app = create_app(runtime, dev_inbox=inbox)
    inbox.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, inbox
    finally:
        inbox.stop()


async def test_sent_mail_is_listed_and_rendered(
    inbox_client: tuple[httpx.AsyncClient, DevInbox], org: OrgFixture
) -> None:
    client, inbox = inbox_client
    message = EmailMessage()
    message["From"] = "sender@example.com"
    message["To"] = "lead@example.org"
    message["Subject"] = "Thanks for visiting <our booth>"
    message.set_content("Plain body")
    message.add_alternative("<p>HTML <b>body</b></p>", subtype="html")
    await aiosmtplib.send(message, hostname="127.0.0.1", port=inbox.port)

    await log_in(client, org.admin.email, org.admin_password)
    listing = await client.get("/dev-inbox")
    assert listing.status_code == 200
    assert "Thanks for visiting &lt;our booth&gt;" in listing.text  # escaped
    assert "lead@example.org" in listing.text
    name = inbox.mailbox.list()[0].name
    detail = await client.get(f"/dev-inbox/{name}")
    assert detail.status_code == 200
    assert "Plain body" in detail.text
    assert 'sandbox srcdoc="&lt;p&gt;HTML' in detail.text  # HTML only inside a sandboxed frame


async def test_paths_outside_the_mailbox_are_not_served(
    inbox_client: tuple[httpx.AsyncClient, DevInbox], org: OrgFixture
) -> None:
    client, _ = inbox_client
    await log_in(client, org.admin.email, org.admin_password)
    for name in ("..%2F..%2Fetc%2Fpasswd", "20260101T000000-x.eml", "master.key"):
        assert (await client.get(f"/dev-inbox/{name}")).status_code == 404


async def test_without_dev_inbox_the_page_says_how_to_enable_it(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await log_in(client, org.admin.email, org.admin_password)
    reply = await client.get("/dev-inbox")
    assert reply.status_code == 404
    assert "--dev-inbox" in reply.text
