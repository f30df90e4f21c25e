"""``serve --dev-inbox``: mail that visitmail delivered to the local sink shows up on the dev
inbox page, for the admins of the organization that sent it and nobody else."""

from __future__ import annotations

import base64
import email
import email.policy
import re
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
from sqlalchemy import select

from tests.integration.web.test_mapping_api import (
    capture,
    lead,
    live_event,
    put_mapping,
    regional_mapping,
)
from tests.integration.web.test_outbox_pages import csrf_of, log_in_as
from tests.integration.web.test_ui_login import log_in
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import configure_server, make_worker
from tests.support.processes import free_port
from visitmail.adapters.db.tables import OutboxMessageRow
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


PIXEL = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
    b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00"
    b"\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


async def deliver_own(
    runtime: Runtime, org: OrgFixture, inbox: DevInbox, mail: EmailMessage
) -> str:
    """``mail`` goes through ``org``'s outbox and worker into the sink; its name there."""
    message_id = make_msgid(domain="example.com")
    mail["Message-ID"] = message_id
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
    (found,) = [m.name for m in inbox.mailbox.received() if m.message_id == message_id]
    return found


def html_mail() -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Sales <sales@example.com>"
    mail["To"] = "lead@example.org"
    mail["Subject"] = "Thanks for visiting <our booth>, Grüße"  # RFC 2047-encoded on the wire
    mail.set_content("Plain body")
    mail.add_alternative(
        '<p>HTML <b>body</b><img src="https://tracker.example/open.gif" alt="remote">'
        '<img src="cid:logo@example.com" alt="logo"><script>alert(1)</script></p>',
        subtype="html",
    )
    html = mail.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    html.add_related(PIXEL, "image", "png", cid="<logo@example.com>", filename="logo.png")
    return mail


async def test_delivered_mail_is_rendered_with_html_sandboxed(
    runtime: Runtime, org: OrgFixture, inbox: DevInbox, new_client: ClientFactory
) -> None:
    mail = html_mail()
    assert b"=?utf-8?" in mail.as_bytes()  # the subject really is encoded on the wire
    name = await deliver_own(runtime, org, inbox, mail)

    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)
        listing = await browser.get("/dev-inbox")
        assert listing.status_code == 200
        assert "Thanks for visiting &lt;our booth&gt;, Grüße" in listing.text  # decoded, escaped
        assert "lead@example.org" in listing.text
        assert "Sales &lt;sales@example.com&gt;" in listing.text  # the From header
        assert "1 attachment<" in listing.text  # the inline logo is an attachment

        detail = await browser.get(f"/dev-inbox/{name}")
        assert detail.status_code == 200
        frame = re.search(r"<iframe[^>]*>", detail.text)
        assert frame is not None
        assert re.search(r"\ssandbox(\s|>)", frame.group(0))  # sandbox, with no allow-*
        assert "allow-" not in frame.group(0)
        assert f'src="/dev-inbox/{name}/html"' in frame.group(0)
        assert "alert(1)" not in detail.text  # the body is not in the page itself

        body = await browser.get(f"/dev-inbox/{name}/html")
        assert body.status_code == 200
        assert body.headers["content-type"].startswith("text/html")
        policy = body.headers["content-security-policy"]
        assert policy.startswith(
            "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'"
        )
        assert "script" not in policy and "http" not in policy and "sandbox" in policy
        assert body.headers["x-content-type-options"] == "nosniff"
        assert body.headers["x-frame-options"] == "SAMEORIGIN"
        assert "<b>body</b>" in body.text
        # The inline image becomes data: (allowed); the remote one stays remote (blocked).
        assert "cid:logo@example.com" not in body.text
        assert "data:image/png;base64," + base64.b64encode(PIXEL).decode() in body.text
        assert "https://tracker.example/open.gif" in body.text

        # The inline logo is listed as an attachment too, and opens as the image it is.
        assert "<strong>logo.png</strong>" in detail.text
        logo = await browser.get(f"/dev-inbox/{name}/attachments/0")
        assert logo.status_code == 200
        assert logo.headers["content-type"] == "image/png"
        assert logo.headers["content-disposition"].startswith('inline; filename="logo.png"')
        assert "sandbox" in logo.headers["content-security-policy"]
        assert logo.content == PIXEL

        text = await browser.get(f"/dev-inbox/{name}?view=text")
        assert '<pre class="mail-text">Plain body' in text.text
        assert "<iframe" not in text.text

        headers = await browser.get(f"/dev-inbox/{name}?view=headers")
        assert headers.status_code == 200
        subject_row = re.search(r'<th scope="row">Subject</th><td[^>]*>([^<]*)</td>', headers.text)
        assert subject_row is not None
        assert subject_row.group(1) == "Thanks for visiting &lt;our booth&gt;, Grüße"
        assert '<th scope="row">Message-ID</th>' in headers.text


async def test_attachments_open_and_download_and_the_raw_mail_parses(
    runtime: Runtime, inbox: DevInbox, new_client: ClientFactory
) -> None:
    """A notification with the report PDF, exported and delivered through the sink."""
    org = await new_org(runtime, "Acme")
    async with new_client() as api:
        await export_to_inbox(api, runtime, org, inbox, "Acme Lead GmbH")
    await make_worker(runtime, org).run_until_idle()
    (name,) = names_by_subject(inbox).values()
    async with runtime.uow() as uow:
        (sent_message_id, sent_mime), *_ = (
            await uow.session.execute(
                select(OutboxMessageRow.message_id, OutboxMessageRow.mime).where(
                    OutboxMessageRow.organization_id == org.organization.id
                )
            )
        ).all()
    sent = email.message_from_bytes(sent_mime, policy=email.policy.default)
    assert isinstance(sent, EmailMessage)
    (sent_pdf,) = [p for p in sent.iter_attachments() if p.get_content_type() == "application/pdf"]
    pdf_bytes = sent_pdf.get_payload(decode=True)
    assert isinstance(pdf_bytes, bytes) and pdf_bytes.startswith(b"%PDF")

    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)
        detail = await browser.get(f"/dev-inbox/{name}")
        assert detail.status_code == 200
        item = re.search(r'<li data-index="(\d+)"><strong>([^<]+)</strong>', detail.text)
        assert item is not None
        index, filename = item.groups()
        assert filename.endswith(".pdf")
        assert "application/pdf" in detail.text

        opened = await browser.get(f"/dev-inbox/{name}/attachments/{index}")
        assert opened.status_code == 200
        assert opened.headers["content-type"] == "application/pdf"
        assert opened.headers["content-disposition"].startswith("inline; ")
        assert opened.headers["x-content-type-options"] == "nosniff"
        assert opened.content == pdf_bytes
        downloaded = await browser.get(f"/dev-inbox/{name}/attachments/{index}?download=1")
        assert downloaded.headers["content-disposition"].startswith("attachment; ")
        assert downloaded.content == pdf_bytes
        for bad in ("7", "-1", "x", "99999999"):
            missing = await browser.get(f"/dev-inbox/{name}/attachments/{bad}")
            assert missing.status_code == 404, bad

        raw = await browser.get(f"/dev-inbox/{name}/raw")
        assert raw.status_code == 200
        assert raw.headers["content-type"].startswith("message/rfc822")
        assert raw.headers["content-disposition"].startswith("attachment; ")
        assert b"X-Dev-Inbox-" not in raw.content  # the mail as received, not the sink's notes
        parsed = email.message_from_bytes(raw.content, policy=email.policy.default)
        assert parsed["Message-ID"] == sent_message_id


async def test_an_attachment_of_any_other_type_only_downloads_under_its_exact_name(
    runtime: Runtime, org: OrgFixture, inbox: DevInbox, new_client: ClientFactory
) -> None:
    mail = EmailMessage()
    mail["Subject"] = "Page"
    mail.set_content("see attached")
    page = b"<script>alert(document.cookie)</script>"
    mail.add_attachment(page, maintype="text", subtype="html", filename="Grüße.html")
    name = await deliver_own(runtime, org, inbox, mail)
    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)
        detail = await browser.get(f"/dev-inbox/{name}")
        assert "<strong>Grüße.html</strong>" in detail.text
        assert f'href="/dev-inbox/{name}/attachments/0"' not in detail.text  # no "Open"
        for path in ("", "?download=1"):
            reply = await browser.get(f"/dev-inbox/{name}/attachments/0{path}")
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/html")
            assert reply.headers["content-disposition"] == (
                "attachment; filename=\"Gr__e.html\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe.html"
            )
            assert reply.headers["content-security-policy"].endswith("sandbox")
            assert reply.headers["x-content-type-options"] == "nosniff"
            assert reply.content == page


async def test_another_organizations_mail_is_not_served_by_any_route(
    runtime: Runtime, inbox: DevInbox, new_client: ClientFactory
) -> None:
    acme, globex = await new_org(runtime, "Acme"), await new_org(runtime, "Globex")
    async with new_client() as api:
        await export_to_inbox(api, runtime, acme, inbox, "Acme Lead GmbH")
    await make_worker(runtime, acme).run_until_idle()
    (name,) = names_by_subject(inbox).values()
    async with new_client() as browser:
        await log_in(browser, globex.admin.email, globex.admin_password)
        for path in ("", "/html", "/raw", "/attachments/0", "/attachments/0?download=1"):
            reply = await browser.get(f"/dev-inbox/{name}{path}")
            assert reply.status_code == 404, path
            assert b"%PDF" not in reply.content and b"Acme Lead" not in reply.content
        token = await csrf_of(browser, "/dev-inbox")
        assert (
            await browser.post(f"/dev-inbox/{name}/delete", data={"csrf_token": token})
        ).status_code == 404
        cleared = await browser.post("/dev-inbox/delete-all", data={"csrf_token": token})
        assert cleared.status_code == 303
    assert [m.name for m in inbox.mailbox.received()] == [name]  # Acme's mail is untouched


async def test_search_finds_by_subject_and_body_and_bounds_its_input(
    runtime: Runtime, org: OrgFixture, inbox: DevInbox, new_client: ClientFactory
) -> None:
    for subject, body in (
        ("Brochure for Müller", "See you in Hannover"),
        ("Price list", "Rabatt 10%"),
    ):
        mail = EmailMessage()
        mail["From"] = "sales@example.com"
        mail["To"] = "lead@example.org"
        mail["Subject"] = subject
        mail.set_content(body)
        await deliver_own(runtime, org, inbox, mail)

    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)

        async def found(q: str) -> tuple[int, str]:
            reply = await browser.get("/dev-inbox", params={"q": q})
            subjects = re.findall(r'<a href="/dev-inbox/[^"]+">([^<]+)</a>', reply.text)
            return reply.status_code, ",".join(subjects)

        assert await found("") == (200, "Price list,Brochure for Müller")
        assert await found("müller") == (200, "Brochure for Müller")  # subject, any case
        assert await found("HANNOVER") == (200, "Brochure for Müller")  # text body
        assert await found("rabatt 10%") == (200, "Price list")  # every word, in the body
        assert await found("lead@example.org price") == (200, "Price list")  # to + subject
        assert await found("nowhere") == (200, "")
        for bad in ("x" * 201, "line\nbreak", "bell\x07"):
            reply = await browser.get("/dev-inbox", params={"q": bad})
            assert reply.status_code == 422, bad
            assert 'id="dev-inbox-search-error"' in reply.text
            assert 'aria-invalid="true"' in reply.text
            assert "x" * 201 not in reply.text  # not echoed back
        long = await browser.get("/dev-inbox", params={"q": "x" * 201})
        assert "Search: must be at most 200 characters." in long.text


async def test_an_admin_deletes_one_mail_then_all_after_confirming(
    runtime: Runtime, org: OrgFixture, inbox: DevInbox, new_client: ClientFactory
) -> None:
    names = []
    for subject in ("first", "second", "third"):
        mail = EmailMessage()
        mail["Subject"] = subject
        mail.set_content("x")
        names.append(await deliver_own(runtime, org, inbox, mail))
    forged = EmailMessage()  # mail nobody sent: shown to nobody, deleted by nobody
    forged["Subject"] = "forged"
    forged["Message-ID"] = make_msgid(domain="example.com")
    forged.set_content("x")
    await aiosmtplib.send(
        forged,
        hostname="127.0.0.1",
        port=inbox.port,
        sender="a@b.example",
        recipients=["c@d.example"],
    )

    async with new_client() as browser:
        await log_in(browser, org.admin.email, org.admin_password)
        page = await browser.get(f"/dev-inbox/{names[0]}")
        assert f'<form method="post" action="/dev-inbox/{names[0]}/delete">' in page.text
        assert '<details class="confirm">' in page.text  # asked first, without script
        refused = await browser.post(f"/dev-inbox/{names[0]}/delete", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        assert names[0] in {m.name for m in inbox.mailbox.received()}

        token = await csrf_of(browser, "/dev-inbox")
        deleted = await browser.post(f"/dev-inbox/{names[0]}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/dev-inbox?done=deleted"
        after = await browser.get(deleted.headers["location"])
        assert "The message was deleted." in after.text
        assert "2 messages." in after.text
        assert (await browser.get(f"/dev-inbox/{names[0]}")).status_code == 404

        cleared = await browser.post("/dev-inbox/delete-all", data={"csrf_token": token})
        assert cleared.status_code == 303
        empty = await browser.get(cleared.headers["location"])
        assert "Your organization&#39;s mail was deleted." in empty.text
        assert "No mail yet." in empty.text
        assert f"port <code>{inbox.port}</code>" in empty.text  # how mail gets here
    assert [m.subject for m in inbox.mailbox.received()] == ["forged"]


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
