"""The outbox through the HTTP API, with real deliveries to aiosmtpd, on both databases;
and ``/metrics``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_settings
from tests.support.orgs import OrgFixture, new_member, new_org
from tests.support.outbox import build_mime, configure_server, enqueue, make_worker
from tests.support.smtp_servers import Script, SmtpServer, start_smtp_server
from visitmail.domain.outbox import MessageKind
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import outbox
from visitmail.services.outbox_ports import NewMessage, NewRecipient
from visitmail.web.app import create_app

BODY_TEXT = "Thanks for visiting our booth."  # in every MIME body tests.support.outbox builds


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def servers() -> AsyncIterator[list[SmtpServer]]:
    started: list[SmtpServer] = []
    yield started
    for server in started:
        await server.close()


async def serve(
    runtime: Runtime, org: OrgFixture, servers: list[SmtpServer], script: Script | None = None
) -> SmtpServer:
    server = await start_smtp_server(script=script)
    servers.append(server)
    await configure_server(runtime, org, server.port)
    return server


async def enqueue_follow_up(runtime: Runtime, org: OrgFixture, to: str) -> uuid.UUID:
    message_id = make_msgid(domain="example.com")
    async with runtime.uow() as uow:
        result = await outbox.enqueue(
            uow,
            NewMessage(
                organization_id=org.organization.id,
                kind=MessageKind.FOLLOW_UP,
                idempotency_key=uuid.uuid4().hex,
                message_id=message_id,
                mail_from="sales@example.com",
                subject="Your visit",
                mime=build_mime(message_id, [to], "Your visit"),
                recipients=[NewRecipient(to)],
            ),
        )
        await uow.commit()
    return result.id


async def detail(client: httpx.AsyncClient, org: OrgFixture, pk: uuid.UUID) -> dict[str, Any]:
    reply = await client.get(f"/api/v1/messages/{pk}", headers=org.headers)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def test_list_with_filters_pages_and_counts(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    await serve(runtime, org, servers)
    sent, _ = await enqueue(runtime, org, ["lead@example.org"], key="report-7:exported")
    await make_worker(runtime, org).run_until_idle()
    queued, _ = await enqueue(runtime, org, ["later@example.org"])
    follow_up = await enqueue_follow_up(runtime, org, "lead2@example.org")
    cancelled = await client.post(f"/api/v1/messages/{follow_up}/cancel", headers=org.headers)
    assert cancelled.status_code == 200, cancelled.text

    reply = await client.get("/api/v1/messages", headers=org.headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [m["id"] for m in body["items"]] == [str(follow_up), str(queued), str(sent)]
    assert body["counts"] == {
        "queued": 1,
        "sending": 0,
        "sent": 1,
        "deferred": 0,
        "failed": 0,
        "cancelled": 1,
        "expired": 0,
    }
    item = body["items"][2]
    assert item["status"] == "sent"
    assert item["kind"] == "notification"
    assert item["idempotency_key"] == "report-7:exported"
    assert item["mail_from"] == "sales@example.com"
    assert item["subject"] == "Hello"
    assert item["size"] > 0
    assert item["attempts"] == 1 and item["attempt_count"] == 1
    assert item["sent_at"] is not None
    assert item["possible_duplicate"] is False
    assert item["last_error"] is None
    assert item["message_id_header"].startswith("<")
    assert {k for k in item if k not in ("not_before", "expires_at", "priority", "updated_at")} >= {
        "id",
        "kind",
        "status",
        "created_at",
        "recipients",
    }
    assert item["recipients"] == [
        {
            "address": "lead@example.org",
            "role": "to",
            "status": "accepted",
            "code": 250,
            "enhanced_status": "2.0.0",
            "text": item["recipients"][0]["text"],
            "advice": None,  # an accepted reply needs no explanation
            "updated_at": item["recipients"][0]["updated_at"],
        }
    ]

    async def ids(query: str) -> list[str]:
        listed = await client.get(f"/api/v1/messages?{query}", headers=org.headers)
        assert listed.status_code == 200, listed.text
        return [m["id"] for m in listed.json()["items"]]

    assert await ids("status=sent") == [str(sent)]
    assert await ids("status=queued") == [str(queued)]
    assert await ids("status=cancelled&kind=follow_up") == [str(follow_up)]
    assert await ids("kind=notification") == [str(queued), str(sent)]
    assert await ids("status=failed") == []
    assert await ids("limit=1") == [str(follow_up)]
    assert await ids("limit=2&offset=1") == [str(queued), str(sent)]
    filtered = await client.get("/api/v1/messages?status=sent", headers=org.headers)
    assert filtered.json()["counts"]["queued"] == 1  # counts ignore the filters


async def test_detail_after_a_real_delivery_has_recipients_and_attempts(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    server = await serve(runtime, org, servers)
    pk, message_id = await enqueue(runtime, org, ["lead@example.org", "boss@example.org"])
    await make_worker(runtime, org).run_until_idle()

    body = await detail(client, org, pk)
    assert body["status"] == "sent"
    assert body["message_id_header"] == message_id
    assert body["attempt_count"] == 1  # one conversation; the ledger has a row per recipient
    recipients = body["recipients"]
    assert [(r["address"], r["status"], r["code"]) for r in recipients] == [
        ("lead@example.org", "accepted", 250),
        ("boss@example.org", "accepted", 250),
    ]
    attempts = body["attempts"]
    assert [(a["recipient"], a["outcome"], a["code"]) for a in attempts] == [
        ("lead@example.org", "accepted", 250),
        ("boss@example.org", "accepted", 250),
    ]
    for attempt in attempts:
        assert set(attempt) == {
            "at",
            "recipient",
            "outcome",
            "code",
            "enhanced_status",
            "text",
            "advice",
            "duration_ms",
        }
        assert attempt["advice"] is None
        assert attempt["enhanced_status"] == "2.0.0"
        assert "accepted" in attempt["text"].lower()
        assert attempt["duration_ms"] >= 0
    assert len(server.recorder.messages) == 1


async def test_permanent_rejection_shows_the_servers_reply(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    script = Script(rcpt=lambda a: "550 5.1.1 <nobody@example.org>: Recipient unknown here")
    await serve(runtime, org, servers, script)
    pk, _ = await enqueue(runtime, org, ["nobody@example.org"])
    await make_worker(runtime, org).run_until_idle()

    body = await detail(client, org, pk)
    assert body["status"] == "failed"
    assert "Recipient unknown here" in str(body["last_error"])
    (recipient,) = body["recipients"]
    assert recipient["status"] == "rejected"
    assert (recipient["code"], recipient["enhanced_status"]) == (550, "5.1.1")
    assert "Recipient unknown here" in recipient["text"]
    (attempt,) = body["attempts"]
    assert (attempt["outcome"], attempt["code"], attempt["enhanced_status"]) == (
        "rejected",
        550,
        "5.1.1",
    )
    assert "Recipient unknown here" in attempt["text"]
    listed = await client.get("/api/v1/messages?status=failed", headers=org.headers)
    (item,) = listed.json()["items"]
    assert item["recipients"][0]["enhanced_status"] == "5.1.1"


async def test_retry_of_a_failed_message_queues_it_and_a_worker_sends_it(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    script = Script(data=lambda n: "550 5.7.1 Message refused by policy" if n == 1 else None)
    server = await serve(runtime, org, servers, script)
    pk, message_id = await enqueue(runtime, org, ["lead@example.org"])
    await make_worker(runtime, org).run_until_idle()
    assert (await detail(client, org, pk))["status"] == "failed"
    assert server.recorder.messages == []

    retried = await client.post(f"/api/v1/messages/{pk}/retry", headers=org.headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "queued"
    assert retried.json()["recipients"][0]["status"] == "pending"

    await make_worker(runtime, org).run_until_idle()
    body = await detail(client, org, pk)
    assert body["status"] == "sent"
    attempts = body["attempts"]
    assert [(a["outcome"], a["code"]) for a in attempts] == [("rejected", 550), ("accepted", 250)]
    assert [m.parsed()["Message-ID"] for m in server.recorder.messages] == [message_id]


async def test_cancel_of_a_queued_message_stops_it(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    server = await serve(runtime, org, servers)
    pk, _ = await enqueue(runtime, org, ["lead@example.org"])

    cancelled = await client.post(f"/api/v1/messages/{pk}/cancel", headers=org.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    await make_worker(runtime, org).run_until_idle()
    body = await detail(client, org, pk)
    assert body["status"] == "cancelled"
    assert body["attempts"] == []
    assert server.recorder.messages == []
    again = await client.post(f"/api/v1/messages/{pk}/cancel", headers=org.headers)
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "status"


async def test_cancel_or_retry_of_a_sent_message_is_a_conflict(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    server = await serve(runtime, org, servers)
    pk, _ = await enqueue(runtime, org, ["lead@example.org"])
    await make_worker(runtime, org).run_until_idle()

    for action in ("cancel", "retry"):
        reply = await client.post(f"/api/v1/messages/{pk}/{action}", headers=org.headers)
        assert reply.status_code == 409, (action, reply.text)
        error = reply.json()["error"]
        assert error["code"] == "conflict"
        assert error["field"] == "status"
        assert "sent" in error["message"]
    assert (await detail(client, org, pk))["status"] == "sent"
    assert len(server.recorder.messages) == 1


@pytest.mark.parametrize("role", [Role.REPORTER, Role.USER])
async def test_reporters_and_users_cannot_read_the_outbox(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, role: Role
) -> None:
    pk, _ = await enqueue(runtime, org, ["lead@example.org"])
    _user, token = await new_member(runtime, org, role)
    for method, url in [
        ("GET", "/api/v1/messages"),
        ("GET", f"/api/v1/messages/{pk}"),
        ("POST", f"/api/v1/messages/{pk}/retry"),
        ("POST", f"/api/v1/messages/{pk}/cancel"),
    ]:
        reply = await client.request(method, url, headers=bearer(token))
        assert reply.status_code == 403, (method, url, reply.text)
        assert reply.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("role", [Role.EVENT_CURATOR, Role.EVENT_MANAGER])
async def test_curators_read_but_only_admins_act(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, role: Role
) -> None:
    pk, _ = await enqueue(runtime, org, ["lead@example.org"])
    _user, token = await new_member(runtime, org, role)
    listed = await client.get("/api/v1/messages", headers=bearer(token))
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["items"]] == [str(pk)]
    assert (await client.get(f"/api/v1/messages/{pk}", headers=bearer(token))).status_code == 200
    for action in ("retry", "cancel"):
        reply = await client.post(f"/api/v1/messages/{pk}/{action}", headers=bearer(token))
        assert reply.status_code == 403, (action, reply.text)
    assert (await detail(client, org, pk))["status"] == "queued"


async def test_unauthenticated_requests_are_refused(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/messages")
    assert reply.status_code == 401
    assert reply.json()["error"]["field"] == "authorization"


async def test_another_organizations_message_answers_404(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    other = await new_org(runtime, name="Other")
    theirs, _ = await enqueue(runtime, other, ["secret-lead@example.org"], subject="Theirs")
    mine, _ = await enqueue(runtime, org, ["lead@example.org"])

    for method, url in [
        ("GET", f"/api/v1/messages/{theirs}"),
        ("POST", f"/api/v1/messages/{theirs}/retry"),
        ("POST", f"/api/v1/messages/{theirs}/cancel"),
        ("GET", f"/api/v1/messages/{uuid.uuid4()}"),
    ]:
        reply = await client.request(method, url, headers=org.headers)
        assert reply.status_code == 404, (method, url, reply.text)
        assert reply.json()["error"]["code"] == "not_found"
        assert "secret-lead" not in reply.text
    listed = (await client.get("/api/v1/messages", headers=org.headers)).json()
    assert [m["id"] for m in listed["items"]] == [str(mine)]
    assert listed["counts"]["queued"] == 1
    # untouched, and still theirs
    assert (await detail(client, other, theirs))["status"] == "queued"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("status=SENT", "status"),
        ("kind=newsletter", "kind"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, org: OrgFixture, query: str, field: str
) -> None:
    reply = await client.get(f"/api/v1/messages?{query}", headers=org.headers)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid"
    assert error["field"] == field


async def test_limit_bounds_are_accepted(client: httpx.AsyncClient, org: OrgFixture) -> None:
    for limit in (1, 200):
        reply = await client.get(f"/api/v1/messages?limit={limit}", headers=org.headers)
        assert reply.status_code == 200, reply.text


async def test_malformed_message_id_is_422(client: httpx.AsyncClient, org: OrgFixture) -> None:
    for method, url in [
        ("GET", "/api/v1/messages/not-a-uuid"),
        ("POST", "/api/v1/messages/not-a-uuid/retry"),
        ("POST", "/api/v1/messages/not-a-uuid/cancel"),
    ]:
        reply = await client.request(method, url, headers=org.headers)
        assert reply.status_code == 422, (method, url, reply.text)
        assert reply.json()["error"]["field"] == "message_id"


async def test_the_mime_body_is_never_exposed(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    await serve(runtime, org, servers)
    sent, _ = await enqueue(runtime, org, ["lead@example.org"])
    await make_worker(runtime, org).run_until_idle()
    queued, _ = await enqueue(runtime, org, ["later@example.org"])

    replies = [
        await client.get("/api/v1/messages", headers=org.headers),
        await client.get(f"/api/v1/messages/{sent}", headers=org.headers),
        await client.get(f"/api/v1/messages/{queued}", headers=org.headers),
        await client.post(f"/api/v1/messages/{queued}/cancel", headers=org.headers),
    ]
    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert BODY_TEXT not in reply.text
        assert "mime" not in reply.text.lower()
        assert "Content-Type" not in reply.text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_show_outbox_gauges_and_attempt_counters(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    await serve(runtime, org, servers)
    for i in range(3):
        await enqueue(runtime, org, [f"lead{i}@example.org"])
    await make_worker(runtime, org).run_until_idle()

    reply = await client.get("/metrics")  # no token: a scrape target
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    found = samples(reply.text)
    assert found[("visitmail_outbox_messages", (("status", "sent"),))] >= 3
    for status in ("queued", "sending", "deferred", "failed", "cancelled", "expired"):
        assert ("visitmail_outbox_messages", (("status", status),)) in found
    assert found[("visitmail_organizations_paused", ())] >= 0
    assert found[("visitmail_metrics_database_up", ())] == 1
    assert found[("visitmail_delivery_attempts_total", (("outcome", "accepted"),))] >= 3
    assert found[("visitmail_messages_settled_total", (("status", "sent"),))] >= 3
    assert found[("visitmail_delivery_attempt_seconds_count", ())] >= 1

    # gauges are read at scrape time: one more queued message shows at once
    before = found[("visitmail_outbox_messages", (("status", "queued"),))]
    await enqueue(runtime, org, ["late@example.org"])
    after = samples((await client.get("/metrics")).text)
    assert after[("visitmail_outbox_messages", (("status", "queued"),))] >= before + 1


async def test_metrics_count_paused_organizations(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    before = samples((await client.get("/metrics")).text)
    async with runtime.uow() as uow:
        await uow.health.record_failure(
            org.organization.id,
            "auth: 535 5.7.8 authentication failed",
            datetime.now(UTC),
            pause_after=1,
            probe_in=timedelta(hours=1),
        )
        await uow.commit()
    after = samples((await client.get("/metrics")).text)
    key = ("visitmail_organizations_paused", ())
    assert after[key] == before[key] + 1


async def test_metrics_still_answer_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    unreachable = build_runtime(settings, fast_hashing=True)
    transport = httpx.ASGITransport(app=create_app(unreachable))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            reply = await c.get("/metrics")
    finally:
        await unreachable.close()
    assert reply.status_code == 200
    found = samples(reply.text)
    assert found[("visitmail_metrics_database_up", ())] == 0
    assert not any(name == "visitmail_outbox_messages" for name, _labels in found)
