"""``serve --dev-inbox``: mail that visitmail delivered to the local sink shows up on the dev
inbox page, for the admins of the organization that sent it and nobody else."""

from __future__ import annotations

import secrets
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from fastapi import FastAPI

from tests.integration.web.test_mapping_api import (
    capture,
    lead,
    live_event,
    put_mapping,
    regional_mapping,
)
from tests.integration.web.test_outbox_pages import log_in_as
from tests.integration.web.test_ui_login import log_in
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import configure_server, make_worker
from tests.support.processes import free_port
from visitmail.adapters.devinbox.sink import DevInbox
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.outbox import MessageKind
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import outbox
from visitmail.services.outbox_ports import NewMessage, NewRecipient
from visitmail.web.app import create_app

ClientFactory = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[DevInbox]:
    box = DevInbox(tmp_path / "inbox", port=free_port())
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def inbox_app(runtime: Runtime, inbox: DevInbox) -> FastAPI:
    app = create_app(runtime, dev_inbox=inbox)
    # The real connection tester, allowed to reach this sink's port as serve's would be.
    app.state.diagnoser = SmtpConnectionTester(NetworkPolicy.of([], dev_inbox_port=inbox.port))
    return app


@pytest.fixture
def new_client(inbox_app: FastAPI) -> ClientFactory:
    """A browser of its own (cookies, client address) per user."""

    @asynccontextmanager
    async def make() -> AsyncIterator[httpx.AsyncClient]:
        address = f"10.8.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
        transport = httpx.ASGITransport(app=inbox_app, client=(address, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client

    return make


async def export_to_inbox(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, inbox: DevInbox, company: str
) -> None:
    """``org`` sends through the dev inbox; a report on ``company`` is exported, so the
    mapping's notification is queued in the outbox."""
    await configure_server(runtime, org, inbox.port)
    await put_mapping(client, org, regional_mapping())
    event = await live_event(client, org)
    report = await capture(client, org, event["id"], lead=lead(company=company))
    reply = await client.post(f"/api/v1/reports/{report['id']}/export", headers=org.headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["notifications"][0]["message_id"]


def names_by_subject(inbox: DevInbox) -> dict[str, str]:
    return {m.subject: m.name for m in inbox.mailbox.received()}


async def test_each_admin_sees_only_their_own_organizations_mail(
    runtime: Runtime, inbox: DevInbox, new_client: ClientFactory
) -> None:
    acme, globex = await new_org(runtime, "Acme"), await new_org(runtime, "Globex")
    async with new_client() as api:
        await export_to_inbox(api, runtime, acme, inbox, "Acme Lead GmbH")
        await export_to_inbox(api, runtime, globex, inbox, "Globex Lead AG")
    await make_worker(runtime, acme, globex).run_until_idle()

    names = names_by_subject(inbox)
    acme_subject = "New lead: Acme Lead GmbH (10115 Berlin)"
    globex_subject = "New lead: Globex Lead AG (10115 Berlin)"
    assert set(names) == {acme_subject, globex_subject}  # both reached the one sink

    for org, own, other in (
        (acme, acme_subject, globex_subject),
        (globex, globex_subject, acme_subject),
    ):
        async with new_client() as browser:
            await log_in(browser, org.admin.email, org.admin_password)
            listing = await browser.get("/dev-inbox")
            assert listing.status_code == 200
            assert own in listing.text
            assert other not in listing.text
            assert "berlin@acme.example" in listing.text
            mine = await browser.get(f"/dev-inbox/{names[own]}")
            assert mine.status_code == 200
            assert own in mine.text
            # The other organization's mail, its name guessed or leaked: as if it did not exist.
            theirs = await browser.get(f"/dev-inbox/{names[other]}")
            assert theirs.status_code == 404
            assert "No such message." in theirs.text
            assert other not in theirs.text


@pytest.mark.parametrize("role", [Role.EVENT_MANAGER, Role.REPORTER])
async def test_only_admins_read_the_dev_inbox(
    runtime: Runtime, inbox: DevInbox, new_client: ClientFactory, role: Role
) -> None:
    org = await new_org(runtime)
    async with new_client() as api:
        await export_to_inbox(api, runtime, org, inbox, "Acme Lead GmbH")
    await make_worker(runtime, org).run_until_idle()
    (name,) = names_by_subject(inbox).values()

    async with new_client() as browser:
        await log_in_as(browser, runtime, org, role)
        dashboard = await browser.get("/")
        assert dashboard.status_code == 200
        assert 'href="/dev-inbox"' not in dashboard.text  # not offered in the navigation
        for path in ("/dev-inbox", f"/dev-inbox/{name}"):
            reply = await browser.get(path)
            assert reply.status_code == 403, path
            assert "Only admins read the dev inbox" in reply.text
            assert "Acme Lead GmbH" not in reply.text

    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)
        assert 'href="/dev-inbox"' in (await browser.get("/")).text


async def test_a_connection_test_message_is_shown_to_the_organization_that_ran_it(
    runtime: Runtime, inbox: DevInbox, new_client: ClientFactory
) -> None:
    acme, globex = await new_org(runtime, "Acme"), await new_org(runtime, "Globex")
    await configure_server(runtime, acme, inbox.port)
    async with new_client() as api:
        reply = await api.post(
            "/api/v1/smtp-settings/test", headers=acme.headers, json={"send_to": "me@acme.example"}
        )
    assert reply.status_code == 200, reply.text
    send = next(s for s in reply.json()["steps"] if s["name"] == "send")
    assert send["status"] == "passed", send
    (name,) = names_by_subject(inbox).values()

    async with new_client() as browser:
        await log_in(browser, acme.admin.email, acme.admin_password)
        assert "visitmail connection test" in (await browser.get("/dev-inbox")).text
        assert (await browser.get(f"/dev-inbox/{name}")).status_code == 200
    async with new_client() as browser:
        await log_in(browser, globex.admin.email, globex.admin_password)
        assert "visitmail connection test" not in (await browser.get("/dev-inbox")).text
        assert (await browser.get(f"/dev-inbox/{name}")).status_code == 404


async def test_mail_no_outbox_message_claims_is_shown_to_nobody(
    runtime: Runtime, org: OrgFixture, inbox: DevInbox, new_client: ClientFactory
) -> None:
    """Anyone who reaches the sink's port can write to it; headers that name the
    organization's sender or claim to be the sink's own prove nothing."""
    forged = EmailMessage()
    forged["X-Dev-Inbox-Mail-From"] = "sales@example.com"
    forged["From"] = "Sales <sales@example.com>"
    forged["To"] = "lead@example.org"
    forged["Subject"] = "Forged into the sink"
    forged["Message-ID"] = make_msgid(domain="example.com")
    forged.set_content("Please log in at http://evil.example/")
    await aiosmtplib.send(forged, hostname="127.0.0.1", port=inbox.port)
    (name,) = names_by_subject(inbox).values()

    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)
        assert "Forged into the sink" not in (await browser.get("/dev-inbox")).text
        assert (await browser.get(f"/dev-inbox/{name}")).status_code == 404


async def test_delivered_mail_is_rendered_with_html_sandboxed(
    runtime: Runtime, org: OrgFixture, inbox: DevInbox, new_client: ClientFactory
) -> None:
    message_id = make_msgid(domain="example.com")
    mail = EmailMessage()
    mail["From"] = "sales@example.com"
    mail["To"] = "lead@example.org"
    mail["Subject"] = "Thanks for visiting <our booth>"
    mail["Message-ID"] = message_id
    mail.set_content("Plain body")
    mail.add_alternative("<p>HTML <b>body</b></p>", subtype="html")
    await configure_server(runtime, org, inbox.port)
    async with runtime.uow() as uow:
        await outbox.enqueue(
            uow,
            NewMessage(
                organization_id=org.organization.id,
                kind=MessageKind.FOLLOW_UP,
                idempotency_key=message_id,
                message_id=message_id,
                mail_from="sales@example.com",
                subject=str(mail["Subject"]),
                mime=mail.as_bytes(),
                recipients=[NewRecipient("lead@example.org")],
            ),
        )
        await uow.commit()
    await make_worker(runtime, org).run_until_idle()

    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)
        listing = await browser.get("/dev-inbox")
        assert listing.status_code == 200
        assert "Thanks for visiting &lt;our booth&gt;" in listing.text  # escaped
        assert "lead@example.org" in listing.text
        name = inbox.mailbox.received()[0].name
        detail = await browser.get(f"/dev-inbox/{name}")
        assert detail.status_code == 200
        assert "Plain body" in detail.text
        assert 'sandbox srcdoc="&lt;p&gt;HTML' in detail.text  # HTML only in a sandboxed frame


async def test_paths_outside_the_mailbox_are_not_served(
    org: OrgFixture, new_client: ClientFactory
) -> None:
    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)
        for name in ("..%2F..%2Fetc%2Fpasswd", "20260101T000000-x.eml", "master.key"):
            assert (await browser.get(f"/dev-inbox/{name}")).status_code == 404


async def test_without_dev_inbox_the_page_says_how_to_enable_it(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await log_in(client, org.admin.email, org.admin_password)
    reply = await client.get("/dev-inbox")
    assert reply.status_code == 404
    assert "--dev-inbox" in reply.text


async def test_received_mail_is_readable_by_the_owner_only(tmp_path: Path) -> None:
    inbox = DevInbox(tmp_path / "var" / "dev-inbox", port=free_port())
    inbox.start()
    try:
        message = EmailMessage()
        message["Subject"] = "private"
        message.set_content("lead data")
        await aiosmtplib.send(
            message,
            hostname="127.0.0.1",
            port=inbox.port,
            sender="a@example.com",
            recipients=["b@example.org"],
        )
    finally:
        inbox.stop()
    directory = tmp_path / "var" / "dev-inbox"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (stored,) = list(directory.iterdir())  # no half-written leftovers beside it
    assert stored.name.endswith(".eml")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
