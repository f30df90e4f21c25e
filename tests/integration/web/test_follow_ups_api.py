"""Follow-up emails end to end, on both databases: templates through the API, follow-ups
queued and delivered by a real worker to aiosmtpd, parsed on arrival; never twice unless
forced; consent; one-click unsubscribe and permanent rejections suppress; bulk."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.web.test_reports_api import capture, live_event
from tests.support.orgs import OrgFixture, new_member, new_org
from tests.support.outbox import configure_server, make_worker
from tests.support.smtp_servers import Script, SmtpServer, start_smtp_server
from visitmail.domain.follow_up import idempotency_key
from visitmail.domain.outbox import MessageKind
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import follow_ups, outbox
from visitmail.services.outbox_ports import NewMessage, NewRecipient

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

GERMAN = {
    "subject": "Ihr Besuch am Stand, {{ lead.company }}",
    "text": "{{ salutation }},\n\nvielen Dank für das Gespräch über {{ answers.interest }}.\n"
    "{{ reporter.name }}",
    "html": "<p>{{ salutation }},</p><p>Danke, {{ lead.company }}!</p>",
}
ENGLISH = {
    "subject": "Your visit, {{ lead.company }}",
    "text": "{{ salutation }},\n\nthanks for talking about {{ answers.interest }}.\n",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def lead(**changes: str) -> dict[str, str]:
    values = {
        "gender": "female",
        "title": "Dr.",
        "first_name": "Anna",
        "last_name": "Müller",
        "company": "Müller GmbH",
        "email": f"anna-{uuid.uuid4().hex[:8]}@example.de",
        "language": "de",
    }
    values.update(changes)
    return values


@pytest.fixture
async def server() -> AsyncIterator[SmtpServer]:
    started = await start_smtp_server()
    yield started
    await started.close()


async def setup(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> tuple[dict[str, Any], dict[str, Any]]:
    """SMTP configured, a live de/en event with a PDF in its library and both templates
    (the German one attaching the PDF): ``(event, media)``."""
    await configure_server(runtime, org, server.port)
    event = await live_event(client, org)
    uploaded = await client.post(
        f"/api/v1/events/{event['id']}/media",
        headers=org.headers,
        files={"file": ("Broschüre.pdf", PDF)},
    )
    assert uploaded.status_code == 201, uploaded.text
    media: dict[str, Any] = uploaded.json()
    await put_template(client, org, event["id"], "de", {**GERMAN, "attachments": [media["id"]]})
    await put_template(client, org, event["id"], "en", {**ENGLISH, "bcc_reporter": True})
    return event, media


async def put_template(
    client: httpx.AsyncClient, org: OrgFixture, event_id: str, language: str, body: dict[str, Any]
) -> dict[str, Any]:
    reply = await client.put(
        f"/api/v1/events/{event_id}/templates/{language}", headers=org.headers, json=body
    )
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def follow_up(
    client: httpx.AsyncClient, headers: dict[str, str], report_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"/api/v1/reports/{report_id}/follow-up", headers=headers, json=body)


def received_by(server: SmtpServer, address: str) -> list[EmailMessage]:
    return [m.parsed() for m in server.recorder.messages if address in m.rcpt_tos]


def attachments(message: EmailMessage) -> list[tuple[str | None, str, bytes]]:
    out = []
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out.append((part.get_filename(), part.get_content_type(), payload))
    return out


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


async def follow_up_messages(client: httpx.AsyncClient, org: OrgFixture) -> list[dict[str, Any]]:
    reply = await client.get("/api/v1/messages?kind=follow_up", headers=org.headers)
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


# --- delivery -----------------------------------------------------------------------------


async def test_german_and_english_follow_ups_arrive_with_salutations_and_attachments(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _media = await setup(client, runtime, org, server)
    reporter, token = await new_member(runtime, org, Role.REPORTER)
    german = await capture(client, bearer(token), event["id"], lead=lead())
    english = await capture(
        client,
        bearer(token),
        event["id"],
        lead=lead(gender="male", first_name="John", last_name="Miller", language="en",
                  company="Miller Ltd"),
    )  # fmt: skip
    french = await capture(client, bearer(token), event["id"], lead=lead(language="fr"))

    for report in (german, english, french):
        reply = await follow_up(client, bearer(token), report["id"])
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "queued"
        assert reply.json()["message_id"]
    assert (await follow_up(client, bearer(token), french["id"])).json()["language"] == "de"

    await make_worker(runtime, org).run_until_idle()

    [de] = received_by(server, german["lead"]["email"])
    assert de["Subject"] == "Ihr Besuch am Stand, Müller GmbH"
    assert de["From"] == "Sales <sales@example.com>"
    assert de["Reply-To"] == f"{reporter.display_name} <{reporter.email}>"
    assert de["Bcc"] is None
    text = body_text(de)
    assert text.startswith("Sehr geehrte Frau Dr. Müller,")
    assert "das Gespräch über Mailing." in text
    assert reporter.display_name in text
    html = de.get_body(preferencelist=("html",))
    assert html is not None and "Danke, Müller GmbH!" in str(html.get_content())
    assert attachments(de) == [("Broschüre.pdf", "application/pdf", PDF)]
    unsubscribe = de["List-Unsubscribe"]
    assert unsubscribe.startswith("<http://testserver/api/v1/unsubscribe/")
    assert de["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    [en] = received_by(server, english["lead"]["email"])
    assert en["Subject"] == "Your visit, Miller Ltd"
    assert body_text(en).startswith("Dear Dr. Miller,")
    assert attachments(en) == []
    en_envelope = next(
        m for m in server.recorder.messages if english["lead"]["email"] in m.rcpt_tos
    )
    assert reporter.email in en_envelope.rcpt_tos  # bcc_reporter: in the envelope only
    assert en["Bcc"] is None

    [fr] = received_by(server, french["lead"]["email"])
    assert body_text(fr).startswith("Sehr geehrte Frau Dr. Müller,")  # the default language


async def test_never_twice_unless_forced(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    report = await capture(client, org.headers, event["id"], lead=lead())
    address = report["lead"]["email"]

    first = await follow_up(client, org.headers, report["id"])
    await make_worker(runtime, org).run_until_idle()
    again = await follow_up(client, org.headers, report["id"])
    assert again.status_code == 200
    assert again.json()["status"] == "already_sent"
    assert again.json()["message_id"] == first.json()["message_id"]
    await make_worker(runtime, org).run_until_idle()
    assert len(received_by(server, address)) == 1

    forced = await follow_up(client, org.headers, report["id"], force=True)
    assert forced.json()["status"] == "queued"
    assert forced.json()["message_id"] != first.json()["message_id"]
    await make_worker(runtime, org).run_until_idle()
    assert len(received_by(server, address)) == 2
    assert len(await follow_up_messages(client, org)) == 2


async def test_an_organization_that_does_not_require_consent_sends_anyway(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    report = await capture(
        client, org.headers, event["id"], lead=lead(), consent={"follow_up_email": False}
    )
    changed = await client.patch(
        "/api/v1/organization", headers=org.headers, json={"require_follow_up_consent": False}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["require_follow_up_consent"] is False
    reply = await follow_up(client, org.headers, report["id"])
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "queued"
    await make_worker(runtime, org).run_until_idle()
    assert len(received_by(server, report["lead"]["email"])) == 1


async def test_without_consent_nothing_is_queued(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    report = await capture(
        client, org.headers, event["id"], lead=lead(), consent={"follow_up_email": False}
    )
    reply = await follow_up(client, org.headers, report["id"])
    assert reply.status_code == 409, reply.text
    assert reply.json()["error"]["code"] == "no_consent"
    assert await follow_up_messages(client, org) == []


async def test_one_click_unsubscribe_suppresses_later_follow_ups(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    report = await capture(client, org.headers, event["id"], lead=lead())
    address = report["lead"]["email"]
    await follow_up(client, org.headers, report["id"])
    await make_worker(runtime, org).run_until_idle()
    [mail] = received_by(server, address)
    path = urlsplit(mail["List-Unsubscribe"].strip("<>")).path

    page = await client.get(path)  # a mail scanner's prefetch changes nothing
    assert page.status_code == 200 and '<form method="post">' in page.text
    still = await follow_up(client, org.headers, report["id"], force=True)
    assert still.json()["status"] == "queued"
    await make_worker(runtime, org).run_until_idle()
    assert len(received_by(server, address)) == 2

    done = await client.post(path, content=b"List-Unsubscribe=One-Click")
    assert done.status_code == 200, done.text
    assert done.json() == {"status": "unsubscribed"}
    assert (await client.post(path)).status_code == 200  # idempotent
    browser = await client.post(path, headers={"Accept": "text/html"})
    assert browser.status_code == 200 and "no more follow-up emails" in browser.text

    suppressed = await follow_up(client, org.headers, report["id"], force=True)
    assert suppressed.status_code == 200
    assert suppressed.json()["status"] == "suppressed"
    assert suppressed.json()["message_id"] is None
    upper = address.upper()
    other_report = await capture(client, org.headers, event["id"], lead=lead(email=upper))
    other = await follow_up(client, org.headers, other_report["id"])
    assert other.json()["status"] == "suppressed"
    await make_worker(runtime, org).run_until_idle()
    assert len(received_by(server, address)) == 2
    assert len(await follow_up_messages(client, org)) == 2

    forged = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    assert (await client.post(forged)).status_code == 404
    assert (await client.get(forged)).status_code == 404


async def test_unsubscribe_is_per_organization(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    address = f"shared-{uuid.uuid4().hex[:8]}@example.de"
    report = await capture(client, org.headers, event["id"], lead=lead(email=address))
    await follow_up(client, org.headers, report["id"])
    await make_worker(runtime, org).run_until_idle()
    path = urlsplit(received_by(server, address)[0]["List-Unsubscribe"].strip("<>")).path
    assert (await client.post(path)).status_code == 200

    other = await new_org(runtime, "Rival")
    other_event, _ = await setup(client, runtime, other, server)
    theirs = await capture(client, other.headers, other_event["id"], lead=lead(email=address))
    assert (await follow_up(client, other.headers, theirs["id"])).json()["status"] == "queued"


async def test_a_permanent_rejection_suppresses_the_address(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    gone = f"gone-{uuid.uuid4().hex[:8]}@example.de"
    server = await start_smtp_server(
        script=Script(rcpt=lambda a: "550 5.1.1 no such user" if a == gone else None)
    )
    try:
        event, _ = await setup(client, runtime, org, server)
        first = await capture(client, org.headers, event["id"], lead=lead(email=gone))
        assert (await follow_up(client, org.headers, first["id"])).json()["status"] == "queued"
        await make_worker(runtime, org).run_until_idle()
        second = await capture(client, org.headers, event["id"], lead=lead(email=gone))
        assert (await follow_up(client, org.headers, second["id"])).json()["status"] == (
            "suppressed"
        )
        forced = await follow_up(client, org.headers, first["id"], force=True)
        assert forced.json()["status"] == "suppressed"
    finally:
        await server.close()


@pytest.mark.parametrize(
    "refusal",
    [
        "553 5.7.1 <sales@example.com>: Sender address rejected: not owned by user alice",
        "552 5.3.4 Message size exceeds fixed limit",
        "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org",
    ],
    ids=["sender", "size", "policy"],
)
async def test_a_refusal_that_is_not_about_the_address_never_suppresses_it(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, refusal: str
) -> None:
    """Issue 10, item 2: one bulk run with a wrong sender (or a size or policy refusal)
    must not put every lead in it on the suppression list."""
    refusing = True
    server = await start_smtp_server(script=Script(rcpt=lambda _a: refusal if refusing else None))
    try:
        event, _ = await setup(client, runtime, org, server)
        leads = [await capture(client, org.headers, event["id"], lead=lead()) for _ in range(3)]
        bulk = await client.post(
            "/api/v1/follow-ups/bulk",
            headers=org.headers,
            json={"report_ids": [r["id"] for r in leads]},
        )
        assert bulk.status_code == 200, bulk.text
        await make_worker(runtime, org).run_until_idle()
        failed = await follow_up_messages(client, org)
        assert {m["status"] for m in failed} == {"failed"}

        refusing = False  # the admin fixed the sender
        again = [await follow_up(client, org.headers, r["id"], force=True) for r in leads]
        assert [a.json()["status"] for a in again] == ["queued"] * 3
        await make_worker(runtime, org).run_until_idle()
        for report in leads:
            assert len(received_by(server, report["lead"]["email"])) == 1
    finally:
        await server.close()


# --- refusals -----------------------------------------------------------------------------


async def test_a_line_break_rendered_into_the_subject_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    await put_template(
        client, org, event["id"], "de", {"subject": "Re: {{ answers.interest }}", "text": "Hi"}
    )
    report = await capture(
        client,
        org.headers,
        event["id"],
        lead=lead(),
        answers={"interest": "CRM\r\nBcc: victim@example.org"},
    )
    reply = await follow_up(client, org.headers, report["id"])
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "subject"
    assert await follow_up_messages(client, org) == []
    # nothing recorded: once the template is fixed, the follow-up goes out
    await put_template(client, org, event["id"], "de", {"subject": "Re: your visit", "text": "Hi"})
    assert (await follow_up(client, org.headers, report["id"])).json()["status"] == "queued"


@pytest.mark.parametrize(
    ("part", "source", "line"),
    [
        ("subject", "{{ ''.__class__.__mro__ }}", 1),
        ("text", "Hello\n\n{{ lead.__class__.__init__.__globals__ }}", 3),
        ("html", "<p>\n{{ self.__dict__ }}</p>", 2),
        ("text", "{% include '/etc/passwd' %}", 1),
        ("text", "{{ lead.fax }}", 1),
    ],
)
async def test_sandbox_escapes_are_refused_at_save(
    client: httpx.AsyncClient, org: OrgFixture, part: str, source: str, line: int
) -> None:
    event = await live_event(client, org)
    body = {"subject": "Hi", "text": "Hello", part: source}
    url = f"/api/v1/events/{event['id']}/templates/de"
    reply = await client.put(url, headers=org.headers, json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == part
    assert reply.json()["error"]["message"].startswith(f"line {line}:")
    assert (await client.get(url, headers=org.headers)).status_code == 404


async def test_template_rules_and_roles(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    base = f"/api/v1/events/{event['id']}/templates"
    body = {"subject": "Hi {{ lead.first_name }}", "text": "{{ salutation }}"}
    _, curator = await new_member(runtime, org, Role.EVENT_CURATOR)
    _, reporter = await new_member(runtime, org, Role.REPORTER)

    assert (await client.put(f"{base}/de", headers=bearer(curator), json=body)).status_code == 403
    french = await client.put(f"{base}/fr", headers=org.headers, json=body)
    assert french.status_code == 422 and french.json()["error"]["field"] == "language"
    missing = await client.put(
        f"{base}/de", headers=org.headers, json={**body, "attachments": [str(uuid.uuid4())]}
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "attachments[0]"

    saved = await put_template(client, org, event["id"], "de", body)
    assert saved["reply_to_reporter"] is True and saved["bcc_reporter"] is False
    replaced = await put_template(client, org, event["id"], "de", {**body, "subject": "Hallo"})
    assert replaced["id"] == saved["id"] and replaced["subject"] == "Hallo"

    listed = await client.get(base, headers=bearer(curator))
    assert [t["language"] for t in listed.json()] == ["de"]
    assert (await client.get(base, headers=bearer(reporter))).status_code == 403
    assert (await client.get(f"{base}/en", headers=org.headers)).json()["error"]["code"] == (
        "no_template"
    )
    other = await new_org(runtime, "Rival")
    assert (await client.get(base, headers=other.headers)).status_code == 404
    assert (await client.put(f"{base}/de", headers=other.headers, json=body)).status_code == 404


async def test_preview_renders_and_sends_nothing(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    report = await capture(client, org.headers, event["id"], lead=lead())
    url = f"/api/v1/events/{event['id']}/templates/de/preview"

    stored = await client.post(url, headers=org.headers, json={"report_id": report["id"]})
    assert stored.status_code == 200, stored.text
    assert stored.json()["subject"] == "Ihr Besuch am Stand, Müller GmbH"
    assert stored.json()["text"].startswith("Sehr geehrte Frau Dr. Müller,")

    sample = await client.post(
        url,
        headers=org.headers,
        json={"lead": {"gender": "male", "last_name": "Schmidt", "company": "ACME"}},
    )
    assert sample.json()["subject"] == "Ihr Besuch am Stand, ACME"
    assert sample.json()["text"].startswith("Sehr geehrter Herr Schmidt,")

    en = await client.post(
        f"/api/v1/events/{event['id']}/templates/en/preview",
        headers=org.headers,
        json={"lead": {"title": "Dr.", "last_name": "Miller"}},
    )
    assert en.json()["text"].startswith("Dear Dr. Miller,")
    assert await follow_up_messages(client, org) == []


async def test_who_may_send_a_follow_up(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    _, ann = await new_member(runtime, org, Role.REPORTER)
    _, bob = await new_member(runtime, org, Role.USER)
    report = await capture(client, bearer(ann), event["id"], lead=lead())
    assert (await follow_up(client, bearer(bob), report["id"])).status_code == 404
    other = await new_org(runtime, "Rival")
    assert (await follow_up(client, other.headers, report["id"])).status_code == 404
    assert (await follow_up(client, bearer(ann), report["id"])).json()["status"] == "queued"


# --- bulk ---------------------------------------------------------------------------------


async def test_bulk_returns_a_status_per_report(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    bare_event = await live_event(client, org)  # no templates
    _, curator = await new_member(runtime, org, Role.EVENT_CURATOR)
    _, reporter = await new_member(runtime, org, Role.REPORTER)
    fresh = await capture(client, org.headers, event["id"], lead=lead())
    sent = await capture(client, org.headers, event["id"], lead=lead())
    await follow_up(client, org.headers, sent["id"])
    refused = await capture(
        client, org.headers, event["id"], lead=lead(), consent={"follow_up_email": False}
    )
    untemplated = await capture(client, org.headers, bare_event["id"], lead=lead())
    unsubscribed = await capture(client, org.headers, event["id"], lead=lead())
    await follow_up(client, org.headers, unsubscribed["id"])
    await make_worker(runtime, org).run_until_idle()
    mail = received_by(server, unsubscribed["lead"]["email"])[0]
    await client.post(urlsplit(mail["List-Unsubscribe"].strip("<>")).path)
    blocked = await capture(
        client, org.headers, event["id"], lead=lead(email=unsubscribed["lead"]["email"])
    )
    nowhere = str(uuid.uuid4())

    ids = [fresh["id"], sent["id"], refused["id"], untemplated["id"], blocked["id"], nowhere]
    assert (
        await client.post(
            "/api/v1/follow-ups/bulk", headers=bearer(reporter), json={"report_ids": ids}
        )
    ).status_code == 403
    reply = await client.post(
        "/api/v1/follow-ups/bulk", headers=bearer(curator), json={"report_ids": [*ids, fresh["id"]]}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    statuses = {r["report_id"]: r["status"] for r in body["results"]}
    assert statuses == {
        fresh["id"]: "queued",
        sent["id"]: "already_sent",
        refused["id"]: "no_consent",
        untemplated["id"]: "no_template",
        blocked["id"]: "suppressed",
        nowhere: "error",
    }
    assert body["summary"] == {
        "queued": 1,
        "already_sent": 1,
        "suppressed": 1,
        "no_consent": 1,
        "no_template": 1,
        "error": 1,
    }
    queued = next(r for r in body["results"] if r["status"] == "queued")
    progress = await client.get("/api/v1/messages?kind=follow_up", headers=bearer(curator))
    assert queued["message_id"] in {m["id"] for m in progress.json()["items"]}

    too_many = await client.post(
        "/api/v1/follow-ups/bulk",
        headers=org.headers,
        json={"report_ids": [str(uuid.uuid4()) for _ in range(501)]},
    )
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "report_ids"
    await make_worker(runtime, org).run_until_idle()
    assert len(received_by(server, fresh["lead"]["email"])) == 1


async def test_bulk_in_chunks_keeps_order_and_one_reports_error_undoes_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(follow_ups, "CHUNK", 2)
    event, _ = await setup(client, runtime, org, server)
    await put_template(
        client, org, event["id"], "en", {"subject": "Re: {{ answers.interest }}", "text": "Hi"}
    )
    gone = f"gone-{uuid.uuid4().hex[:8]}@example.de"
    async with runtime.uow() as uow:
        await follow_ups.unsubscribe(uow, org.organization.id, gone)
    reports = [
        await capture(client, org.headers, event["id"], lead=lead()),
        await capture(
            client,
            org.headers,
            event["id"],
            lead=lead(language="en"),
            answers={"interest": "CRM\r\nBcc: victim@example.org"},
        ),
        await capture(client, org.headers, event["id"], lead=lead(email=gone)),
        await capture(client, org.headers, event["id"], lead=lead()),
        await capture(client, org.headers, event["id"], lead=lead(language="en")),
    ]
    ids = [r["id"] for r in reports]
    reply = await client.post(
        "/api/v1/follow-ups/bulk", headers=org.headers, json={"report_ids": ids}
    )
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["report_id"] for r in results] == ids
    assert [r["status"] for r in results] == ["queued", "error", "suppressed", "queued", "queued"]
    assert results[1]["field"] == "subject"
    await make_worker(runtime, org).run_until_idle()
    for report, result in zip(reports, results, strict=True):
        arrived = received_by(server, report["lead"]["email"])
        assert len(arrived) == (1 if result["status"] == "queued" else 0)


async def test_a_send_queued_concurrently_answers_already_sent(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    event, _ = await setup(client, runtime, org, server)
    report = await capture(client, org.headers, event["id"], lead=lead())
    templates = await client.get(f"/api/v1/events/{event['id']}/templates", headers=org.headers)
    german = next(t for t in templates.json() if t["language"] == "de")
    # Another request won the race: its message holds the key, its send record is not
    # visible yet. The outbox's unique key decides, and nothing is queued twice.
    async with runtime.uow() as uow:
        first = await outbox.enqueue(
            uow,
            NewMessage(
                organization_id=org.organization.id,
                kind=MessageKind.FOLLOW_UP,
                idempotency_key=idempotency_key(
                    uuid.UUID(report["id"]), uuid.UUID(german["id"]), 1
                ),
                message_id="<race@example.com>",
                mail_from="sales@example.com",
                subject="first",
                mime=b"Subject: first\r\n\r\nx\r\n",
                recipients=[NewRecipient(report["lead"]["email"])],
            ),
        )
        await uow.commit()
    reply = await follow_up(client, org.headers, report["id"])
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "already_sent"
    assert reply.json()["message_id"] == str(first.id)
    assert len(await follow_up_messages(client, org)) == 1
