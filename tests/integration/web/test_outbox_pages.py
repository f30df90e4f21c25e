"""The Outbox pages, on both databases: counts and a filterable list, one message with the
server's replies, retry and cancel through CSRF-protected forms, role checks."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.web.test_ui_login import CSRF, log_in
from tests.support.orgs import OrgFixture, new_member, new_org
from tests.support.outbox import configure_server, enqueue, make_worker
from tests.support.smtp_servers import Script, SmtpServer, start_smtp_server
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import identity

REJECTED = "nobody@example.net"


@pytest.fixture
async def smtp(runtime: Runtime, org: OrgFixture) -> AsyncIterator[SmtpServer]:
    script = Script(rcpt=lambda a: "550 5.1.1 no such mailbox here" if a == REJECTED else None)
    server = await start_smtp_server(script=script)
    await configure_server(runtime, org, server.port)
    try:
        yield server
    finally:
        await server.close()


async def log_in_as(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, role: Role
) -> None:
    if role is Role.ADMIN:
        reply = await log_in(client, org.admin.email, org.admin_password)
    else:
        user, _ = await new_member(runtime, org, role)
        async with runtime.uow() as uow:
            password = await identity.set_password(
                uow, runtime.hasher, org.principal, user.id, password=None
            )
        assert password
        reply = await log_in(client, user.email, password)
    assert reply.status_code == 303, reply.text


async def csrf_of(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


async def status_of(client: httpx.AsyncClient, org: OrgFixture, message_id: uuid.UUID) -> str:
    reply = await client.get(f"/api/v1/messages/{message_id}", headers=org.headers)
    assert reply.status_code == 200, reply.text
    status: str = reply.json()["status"]
    return status


def count(page: str, status: str) -> int:
    found = re.search(rf'data-status="{status}">(\d+)<', page)
    assert found, status
    return int(found.group(1))


async def test_the_list_shows_counts_and_a_sent_message(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    sent_id, _ = await enqueue(runtime, org, ["team@example.com"], subject="Lead from Hannover")
    await make_worker(runtime, org).run_until_idle()
    await enqueue(runtime, org, ["later@example.com"], subject="Still waiting")
    await log_in_as(client, runtime, org, Role.ADMIN)

    page = await client.get("/outbox")
    assert page.status_code == 200
    assert count(page.text, "sent") == 1 and count(page.text, "queued") == 1
    assert count(page.text, "failed") == 0
    assert "Lead from Hannover" in page.text and "Still waiting" in page.text
    assert f'href="/outbox/{sent_id}"' in page.text
    assert "team@example.com" in page.text
    assert 'href="/outbox"' in page.text and 'aria-current="page"' in page.text

    only_sent = await client.get("/outbox", params={"status": "sent", "kind": "notification"})
    assert "Lead from Hannover" in only_sent.text and "Still waiting" not in only_sent.text
    assert count(only_sent.text, "queued") == 1  # the counts ignore the filter

    bad = await client.get("/outbox", params={"status": "lost"})
    assert bad.status_code == 422
    assert 'id="filter-status-error"' in bad.text


async def test_the_detail_shows_a_550_rejection_with_the_servers_text(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    message_id, _ = await enqueue(runtime, org, [REJECTED, "ok@example.com"], subject="Mixed")
    await make_worker(runtime, org).run_until_idle()
    await log_in_as(client, runtime, org, Role.ADMIN)

    page = await client.get(f"/outbox/{message_id}")
    assert page.status_code == 200
    assert "no such mailbox here" in page.text
    assert "550 5.1.1" in page.text
    assert "rejected" in page.text and "accepted" in page.text
    assert "ms</td>" in page.text  # every attempt with its duration
    # sent (one recipient accepted, one refused for good): neither retry nor cancel applies
    assert "Retry now" not in page.text and "Cancel message" not in page.text
    assert "can be neither retried nor cancelled" in page.text


async def test_cancel_and_retry_through_the_forms_and_nothing_without_csrf(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    message_id, _ = await enqueue(runtime, org, ["wait@example.com"], subject="Waiting")
    await log_in_as(client, runtime, org, Role.ADMIN)
    token = await csrf_of(client, f"/outbox/{message_id}")

    forged = await client.post(f"/outbox/{message_id}/cancel", data={"csrf_token": "forged"})
    assert forged.status_code == 403 and "CSRF" in forged.text
    missing = await client.post(f"/outbox/{message_id}/cancel")
    assert missing.status_code == 403
    assert await status_of(client, org, message_id) == "queued"

    # Without the confirmation: the detail asks, with the question open; nothing changes.
    asked = await client.post(f"/outbox/{message_id}/cancel", data={"csrf_token": token})
    assert asked.status_code == 200
    assert '<details class="confirm confirm-cancel" open>' in asked.text
    assert "Yes, cancel the message" in asked.text
    assert await status_of(client, org, message_id) == "queued"

    cancelled = await client.post(
        f"/outbox/{message_id}/cancel", data={"csrf_token": token, "confirm": "yes"}
    )
    assert cancelled.status_code == 303
    assert await status_of(client, org, message_id) == "cancelled"
    shown = await client.get(cancelled.headers["location"])
    assert "was cancelled" in shown.text

    assert "Cancel message" not in shown.text and "Retry now" in shown.text
    again = await client.post(
        f"/outbox/{message_id}/cancel", data={"csrf_token": token, "confirm": "yes"}
    )
    assert again.status_code == 409
    assert "cannot be cancelled" in again.text and 'role="alert"' in again.text

    retried = await client.post(f"/outbox/{message_id}/retry", data={"csrf_token": token})
    assert retried.status_code == 303
    assert await status_of(client, org, message_id) == "queued"
    assert "queued for delivery again" in (await client.get(retried.headers["location"])).text


async def test_a_curator_reads_the_outbox_but_cannot_act_or_open_the_mapping(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    message_id, _ = await enqueue(runtime, org, ["wait@example.com"], subject="Waiting")
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    dashboard = await client.get("/")
    assert 'href="/outbox"' in dashboard.text and 'href="/mapping"' not in dashboard.text

    assert (await client.get("/outbox")).status_code == 200
    detail = await client.get(f"/outbox/{message_id}")
    assert detail.status_code == 200 and "Waiting" in detail.text
    assert "Retry now" not in detail.text and "Cancel message" not in detail.text
    token = CSRF.search(detail.text)
    assert token
    refused = await client.post(f"/outbox/{message_id}/cancel", data={"csrf_token": token[1]})
    assert refused.status_code == 403
    assert await status_of(client, org, message_id) == "queued"
    assert (await client.get("/mapping")).status_code == 403


async def test_a_reporter_gets_the_403_page_and_no_link(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    message_id, _ = await enqueue(runtime, org, ["wait@example.com"])
    await log_in_as(client, runtime, org, Role.REPORTER)
    assert 'href="/outbox"' not in (await client.get("/")).text
    for path in ("/outbox", f"/outbox/{message_id}"):
        reply = await client.get(path)
        assert reply.status_code == 403
        assert "Not possible" in reply.text


async def test_another_organizations_message_is_the_404_page(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    other = await new_org(runtime, name="Other")
    theirs, _ = await enqueue(runtime, other, ["x@example.com"], subject="Theirs")
    await log_in_as(client, runtime, org, Role.ADMIN)
    token = await csrf_of(client, "/outbox")
    assert (await client.get(f"/outbox/{theirs}")).status_code == 404
    assert (await client.get("/outbox/not-a-uuid")).status_code == 404
    cancel = await client.post(
        f"/outbox/{theirs}/cancel", data={"csrf_token": token, "confirm": "yes"}
    )
    assert cancel.status_code == 404
    asked = await client.post(f"/outbox/{theirs}/cancel", data={"csrf_token": token})
    assert asked.status_code == 404
    assert await status_of(client, other, theirs) == "queued"
    assert "Theirs" not in (await client.get("/outbox")).text


async def test_the_pages_need_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/outbox", f"/outbox/{uuid.uuid4()}", "/mapping"):
        reply = await client.get(path)
        assert reply.status_code == 303 and reply.headers["location"] == f"/login?next={path}"


async def test_the_detail_says_the_enhanced_status_once(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    # Postfix and others repeat the enhanced status at the start of the text.
    server = await start_smtp_server(script=Script(data=lambda _n: "250 2.0.0 stored"))
    try:
        await configure_server(runtime, org, server.port)
        message_id, _ = await enqueue(runtime, org, ["team@example.com"], subject="Once")
        await make_worker(runtime, org).run_until_idle()
    finally:
        await server.close()
    await log_in_as(client, runtime, org, Role.ADMIN)

    page = await client.get(f"/outbox/{message_id}")
    assert page.status_code == 200
    text = re.sub(r"<[^>]+>", "", page.text)
    assert "250 2.0.0 stored" in text
    assert "2.0.0 2.0.0" not in text
