"""DKIM signing end to end, on both databases: a key generated through the API, signing
switched on, a follow-up and a notification queued through the API and delivered by a
real worker to aiosmtpd; each received message verifies with dkimpy against exactly the
TXT value the API told the admin to publish, and fails once tampered with. Keys rotate
(the old key signs until the admin switches), the master-key rotation re-seals them, and
the private key is in no reply, page or log."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import dkim
import httpx
import pytest
from sqlalchemy import select

from tests.integration.web.test_follow_ups_api import follow_up, lead, setup
from tests.integration.web.test_mapping_api import capture as capture_report
from tests.integration.web.test_mapping_api import live_event, put_mapping, regional_mapping
from tests.integration.web.test_smtp_pages import admin_page
from tests.support.orgs import OrgFixture, new_member
from tests.support.outbox import configure_server, make_worker
from tests.support.smtp_servers import ReceivedMessage, SmtpServer, start_smtp_server
from visitmail.adapters.crypto.keyring import KeyRing, new_key
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.db.tables import DkimKeyRow, OutboxMessageRow
from visitmail.adapters.dkim.keys import DkimpyKeys
from visitmail.adapters.render.mime import build_message
from visitmail.domain.mail import Mailbox, MailSpec
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import dkim as dkim_service

DKIM = "/api/v1/smtp-settings/dkim"
PAGE = "/settings/smtp"
Lookup = Callable[..., bytes | None]


@pytest.fixture
async def server() -> AsyncIterator[SmtpServer]:
    started = await start_smtp_server()
    yield started
    await started.close()


def published(*records: dict[str, Any]) -> Lookup:
    """A DNS that serves exactly the records the API told the admin to publish."""
    zone = {f"{r['name']}.".encode(): "".join(r["strings"]).encode() for r in records}

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return zone.get(name)

    return lookup


async def generate(client: httpx.AsyncClient, org: OrgFixture, **body: Any) -> dict[str, Any]:
    reply = await client.post(DKIM, headers=org.headers, json=body)
    assert reply.status_code == 201, reply.text
    made: dict[str, Any] = reply.json()
    return made


async def put_state(client: httpx.AsyncClient, org: OrgFixture, **body: Any) -> dict[str, Any]:
    reply = await client.put(DKIM, headers=org.headers, json=body)
    assert reply.status_code == 200, reply.text
    state: dict[str, Any] = reply.json()
    return state


def signature_tags(message: bytes) -> dict[str, str]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    found = re.search(r"^DKIM-Signature:(.*?)(?=\r\n\S)", head, re.S | re.M)
    assert found, head[:400]
    value = re.sub(r"\s+", "", found.group(1))
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


async def send_follow_up_and_notification(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> tuple[ReceivedMessage, ReceivedMessage]:
    """A follow-up (template with a PDF attached, List-Unsubscribe) and a notification
    (mapping to the Berlin team), both delivered: ``(follow_up, notification)``."""
    event, _media = await setup(client, runtime, org, server)
    report = await capture_report(client, org, event["id"], lead=lead())
    queued = await follow_up(client, org.headers, report["id"])
    assert queued.status_code == 200, queued.text
    await put_mapping(client, org, regional_mapping())
    mapped_event = await live_event(client, org)
    notified = await capture_report(client, org, mapped_event["id"])
    exported = await client.post(f"/api/v1/reports/{notified['id']}/export", headers=org.headers)
    assert exported.status_code == 200, exported.text
    assert exported.json()["notifications"][0]["kind"] == "email"
    await make_worker(runtime, org).run_until_idle()
    to_lead = [m for m in server.recorder.messages if report["lead"]["email"] in m.rcpt_tos]
    to_team = [m for m in server.recorder.messages if "berlin@acme.example" in m.rcpt_tos]
    assert len(to_lead) == 1 and len(to_team) == 1
    return to_lead[0], to_team[0]


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
async def test_follow_ups_and_notifications_verify_against_the_published_record(
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    server: SmtpServer,
    algorithm: str,
) -> None:
    await configure_server(runtime, org, server.port)
    key = await generate(client, org, algorithm=algorithm)
    record = key["dns_record"]
    selector = f"vm{datetime.now(UTC):%Y%m}"
    assert key["selector"] == selector and key["domain"] == "example.com"
    assert key["algorithm"] == algorithm and key["active"] is True
    assert record["name"] == f"{selector}._domainkey.example.com"
    assert record["type"] == "TXT"
    assert record["value"].startswith(f"v=DKIM1; k={algorithm}; p=")
    assert all(len(s.encode()) <= 255 for s in record["strings"])
    assert "".join(record["strings"]) == record["value"]
    assert len(record["strings"]) == (2 if algorithm == "rsa" else 1)

    status = (await client.get(DKIM, headers=org.headers)).json()
    assert status["enabled"] is False and status["signing"] is False
    assert status["problems"] == ["signing is off"]
    assert status["dns_record"] == record
    on = await put_state(client, org, enabled=True)
    assert on["enabled"] is True and on["signing"] is True and on["problems"] == []

    to_lead, to_team = await send_follow_up_and_notification(client, runtime, org, server)
    dns = published(record)
    for received in (to_lead, to_team):
        content = received.content
        tags = signature_tags(content)
        assert tags["a"] == ("rsa-sha256" if algorithm == "rsa" else "ed25519-sha256")
        assert tags["c"] == "relaxed/relaxed"
        assert tags["d"] == "example.com" and tags["s"] == selector
        assert tags["h"].split(":")[:2] == ["from", "from"]
        assert dkim.verify(content, dnsfunc=dns), content[:600]
        body_at = content.index(b"\r\n\r\n") + 4
        tampered = content[:body_at] + b"Extra line added on the way.\r\n" + content[body_at:]
        assert not dkim.verify(tampered, dnsfunc=dns)
        assert not dkim.verify(
            content.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1), dnsfunc=dns
        )
    assert "list-unsubscribe" in signature_tags(to_lead.content)["h"].split(":")
    assert to_lead.parsed()["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # what was stored at enqueue is exactly what arrived: retries send the same bytes
    async with runtime.uow() as uow:
        stored = set(
            await uow.session.scalars(
                select(OutboxMessageRow.mime).where(
                    OutboxMessageRow.organization_id == org.organization.id,
                    OutboxMessageRow.kind.in_(["follow_up", "notification"]),
                )
            )
        )
    assert {to_lead.content, to_team.content} <= {bytes(m) for m in stored}


async def test_with_signing_off_mail_is_not_signed_and_sent_as_stored(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    await configure_server(runtime, org, server.port)
    await generate(client, org, algorithm="ed25519")  # a key, but signing stays off
    to_lead, to_team = await send_follow_up_and_notification(client, runtime, org, server)
    for received in (to_lead, to_team):
        assert b"DKIM-Signature" not in received.content
        assert received.content.startswith(b"Date: ")  # the renderer's first header


async def test_a_new_key_waits_until_the_admin_switches_then_the_old_one_can_go(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    await configure_server(runtime, org, server.port)
    first = await generate(client, org, algorithm="ed25519", selector="Old1")
    assert first["selector"] == "old1"
    await put_state(client, org, enabled=True)
    second = await generate(client, org, algorithm="rsa", selector="new2")
    assert second["active"] is False
    status = (await client.get(DKIM, headers=org.headers)).json()
    assert status["selector"] == "old1" and status["active_key_id"] == first["id"]
    assert [k["selector"] for k in status["keys"]] == ["new2", "old1"]

    event, _media = await setup(client, runtime, org, server)
    report = await capture_report(client, org, event["id"], lead=lead())
    assert (await follow_up(client, org.headers, report["id"])).status_code == 200
    await make_worker(runtime, org).run_until_idle()
    (old_mail,) = server.recorder.messages
    assert signature_tags(old_mail.content)["s"] == "old1"
    both = published(first["dns_record"], second["dns_record"])
    assert dkim.verify(old_mail.content, dnsfunc=both)

    switched = await put_state(client, org, active_key_id=second["id"])
    assert switched["selector"] == "new2" and switched["algorithm"] == "rsa"
    assert switched["enabled"] is True and switched["signing"] is True
    report2 = await capture_report(client, org, event["id"], lead=lead())
    assert (await follow_up(client, org.headers, report2["id"])).status_code == 200
    await make_worker(runtime, org).run_until_idle()
    new_mail = server.recorder.messages[-1]
    assert signature_tags(new_mail.content)["s"] == "new2"
    assert dkim.verify(new_mail.content, dnsfunc=published(second["dns_record"]))

    active = await client.delete(f"{DKIM}/keys/{second['id']}", headers=org.headers)
    assert active.status_code == 409, active.text
    assert active.json()["error"]["field"] == "key_id"
    gone = await client.delete(f"{DKIM}/keys/{first['id']}", headers=org.headers)
    assert gone.status_code == 204, gone.text
    assert [k["id"] for k in (await client.get(DKIM, headers=org.headers)).json()["keys"]] == [
        second["id"]
    ]
    again = await client.delete(f"{DKIM}/keys/{first['id']}", headers=org.headers)
    assert again.status_code == 404


def error(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()["error"]
    return body


async def test_bad_input_is_refused_naming_the_field(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    early = error(await client.post(DKIM, headers=org.headers, json={}), 404)
    assert early["code"] == "not_configured"
    await configure_server(runtime, org, 2525, sender_email="sales@eu.example.com")

    for selector in ("a.b", "-x", "x" * 64, "vm 1", "vm\n1"):
        body = {"selector": selector}
        assert error(await client.post(DKIM, headers=org.headers, json=body), 422)["field"] == (
            "selector"
        )
    misaligned = error(
        await client.post(DKIM, headers=org.headers, json={"domain": "example.org"}), 422
    )
    assert misaligned["field"] == "domain"
    assert "eu.example.com" in misaligned["message"] and "DMARC" in misaligned["message"]
    child = error(
        await client.post(DKIM, headers=org.headers, json={"domain": "x.eu.example.com"}), 422
    )
    assert child["field"] == "domain"
    long_domain = {"domain": "a" * 300}
    assert error(await client.post(DKIM, headers=org.headers, json=long_domain), 422)["field"] == (
        "domain"
    )
    bad_algorithm = error(
        await client.post(DKIM, headers=org.headers, json={"algorithm": "dsa"}), 422
    )
    assert bad_algorithm["field"] == "algorithm"
    unknown = error(await client.post(DKIM, headers=org.headers, json={"bits": 4096}), 422)
    assert unknown["field"] == "bits"

    enable = error(await client.put(DKIM, headers=org.headers, json={"enabled": True}), 422)
    assert enable["field"] == "enabled"

    parent = await generate(client, org, algorithm="ed25519", domain="example.com", selector="p1")
    assert parent["domain"] == "example.com"  # a parent of eu.example.com is aligned
    taken = error(
        await client.post(
            DKIM, headers=org.headers, json={"algorithm": "ed25519", "selector": "P1",
                                             "domain": "example.com"}
        ),
        409,
    )  # fmt: skip
    assert taken["field"] == "selector" and taken["code"] == "selector_taken"
    not_ours = error(
        await client.put(DKIM, headers=org.headers, json={"active_key_id": str(uuid.uuid4())}),
        422,
    )
    assert not_ours["field"] == "active_key_id"

    _user, token = await new_member(runtime, org, Role.EVENT_MANAGER)
    for method in ("GET", "POST", "PUT"):
        reply = await client.request(
            method, DKIM, headers={"Authorization": f"Bearer {token}"}, json={}
        )
        assert reply.status_code == 403, (method, reply.text)


async def stored_private_key(runtime: Runtime, org: OrgFixture, key_id: str) -> tuple[str, str]:
    """``(sealed token, private key)`` of a key, read from the database the way an
    attacker with the database and the master keys would."""
    async with runtime.uow() as uow:
        row = await uow.session.scalar(select(DkimKeyRow).where(DkimKeyRow.id == uuid.UUID(key_id)))
        assert row is not None
        token = row.private_key_enc
    private = SecretBox(runtime.keyring).open(
        token, organization_id=org.organization.id, field=f"dkim.private_key:{key_id}"
    )
    return token, private


def fragments(private: str) -> list[str]:
    """The private key and pieces of it a leak would show: PEM lines and base64 from the
    private exponent and primes (the first lines of a PKCS#1 key encode the modulus,
    which is public: the same base64 is in the published record)."""
    lines = [line for line in private.splitlines() if line and "-----" not in line]
    return [private.strip(), *lines[8:10], "".join(lines)[-60:]]


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
async def test_the_private_key_is_in_no_reply_page_or_log(
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    server: SmtpServer,
    algorithm: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    await configure_server(runtime, org, server.port)
    made = await client.post(DKIM, headers=org.headers, json={"algorithm": algorithm})
    key = made.json()
    token, private = await stored_private_key(runtime, org, key["id"])
    assert token.startswith("v1:") and private not in token
    if algorithm == "rsa":
        assert private.startswith("-----BEGIN RSA PRIVATE KEY-----")
    replies = [
        made,
        await client.put(DKIM, headers=org.headers, json={"enabled": True}),
        await client.get(DKIM, headers=org.headers),
        await client.get("/api/v1/smtp-settings", headers=org.headers),
        await client.get("/api/v1/smtp-settings/audit", headers=org.headers),
        await client.get("/api/openapi.json"),
    ]
    await send_follow_up_and_notification(client, runtime, org, server)
    replies.append(await client.get("/api/v1/messages", headers=org.headers))
    page, _csrf = await admin_page(client, org)
    assert key["dns_record"]["strings"][0] in page.text
    replies.append(page)
    captured = capsys.readouterr()
    for piece in fragments(private):
        for reply in replies:
            assert piece not in reply.text, reply.url
        assert piece not in caplog.text
        assert piece not in captured.out and piece not in captured.err
        for message in server.recorder.messages:
            assert piece.encode() not in message.content


async def test_master_key_rotation_reseals_dkim_keys_and_signing_still_verifies(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await configure_server(runtime, org, 2525)
    key = await generate(client, org, algorithm="rsa")
    await put_state(client, org, enabled=True)
    before, private = await stored_private_key(runtime, org, key["id"])

    ring = KeyRing([*runtime.keyring.keys, new_key()])
    box = SecretBox(ring)
    result = await dkim_service.rotate_keys(runtime.uow, box)
    assert result.reencrypted >= 1 and result.unreadable == 0
    async with runtime.uow() as uow:
        after = await uow.session.scalar(
            select(DkimKeyRow.private_key_enc).where(DkimKeyRow.id == uuid.UUID(key["id"]))
        )
    assert after is not None and after != before
    assert after.startswith(f"v1:{ring.newest.key_id}:")
    again = await dkim_service.rotate_keys(runtime.uow, box)
    assert again.reencrypted == 0  # idempotent

    signing = dkim_service.DkimSigning(box, DkimpyKeys())
    async with runtime.uow(read_only=True) as uow:
        signer = await signing.load(uow, org.organization.id, "sales@example.com")
        assert await signing.load(uow, org.organization.id, "sales@other.example") is None
    assert signer is not None
    spec = MailSpec(
        sender=Mailbox("sales@example.com"),
        to=(Mailbox("a@example.org"),),
        subject="after the rotation",
        text="still signed\n",
    )
    signed = signer.sign(build_message(spec).mime)
    assert dkim.verify(signed, dnsfunc=published(key["dns_record"]))
    assert private not in signed.decode()


# --- the mail server page ------------------------------------------------------------------


async def test_the_page_generates_a_key_shows_the_record_and_switches_signing_on(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await configure_server(runtime, org, 2525)
    page, csrf = await admin_page(client, org)
    assert 'id="dkim-h"' in page.text and 'action="/settings/smtp/dkim"' in page.text

    refused = await client.post(f"{PAGE}/dkim", data={"algorithm": "ed25519"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert (await client.get(DKIM, headers=org.headers)).json()["keys"] == []

    bad = await client.post(
        f"{PAGE}/dkim", data={"csrf_token": csrf, "algorithm": "ed25519", "selector": "no.dots"}
    )
    assert bad.status_code == 422
    assert 'id="f-dkim-selector-error"' in bad.text and "one DNS label" in bad.text
    assert 'value="no.dots"' in bad.text  # the entered value is kept
    misaligned = await client.post(
        f"{PAGE}/dkim", data={"csrf_token": csrf, "algorithm": "rsa", "domain": "other.example"}
    )
    assert misaligned.status_code == 422 and 'id="f-dkim-domain-error"' in misaligned.text

    made = await client.post(
        f"{PAGE}/dkim", data={"csrf_token": csrf, "algorithm": "rsa", "selector": ""}
    )
    assert made.status_code == 303 and made.headers["location"].endswith("?dkim=generated#dkim")
    shown = await client.get(made.headers["location"])
    status = (await client.get(DKIM, headers=org.headers)).json()
    record = status["dns_record"]
    assert record["name"] in shown.text
    assert record["value"] in shown.text
    assert all(f'"{part}"' in shown.text for part in record["strings"])  # the split form
    assert "Key generated" in shown.text and "not signing" in shown.text

    switched = await client.post(
        f"{PAGE}/dkim/state",
        data={"csrf_token": csrf, "active_key_id": status["active_key_id"], "enabled": "on"},
    )
    assert switched.status_code == 303
    after = (await client.get(DKIM, headers=org.headers)).json()
    assert after["enabled"] is True and after["signing"] is True
    signing_page = await client.get(switched.headers["location"])
    assert ">signing</span>" in signing_page.text

    off = await client.post(f"{PAGE}/dkim/state", data={"csrf_token": csrf})
    assert off.status_code == 303
    assert (await client.get(DKIM, headers=org.headers)).json()["enabled"] is False
    garbage = await client.post(
        f"{PAGE}/dkim/state", data={"csrf_token": csrf, "active_key_id": "not-a-key"}
    )
    assert garbage.status_code == 422 and "f-dkim-active-key-id-error" in garbage.text
