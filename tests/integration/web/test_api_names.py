"""One name per concept across the API (issue 10, item 13), on both databases.

- ``message_id`` is always the outbox message's id, the ``{message_id}`` of
  ``/api/v1/messages/{message_id}``: in follow-up answers, in the notifications an export
  or a check fired, in a suppression's ``reply``, and as ``id`` of the message itself.
- ``message_id_header`` is the RFC 5322 Message-ID a receiver sees, in
  ``/api/v1/messages``, in a suppression's ``reply`` and in the connection test's send
  step.
- ``revision`` is a mapping revision's number wherever it appears (the mapping, the
  revision list, the dry run; ``expected_revision`` on PUT).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.integration.web import test_follow_ups_api as follow_ups
from tests.integration.web.test_mapping_api import MAPPING_URL, put_mapping, regional_mapping
from tests.integration.web.test_mapping_api import capture as capture_report
from tests.integration.web.test_mapping_api import live_event as mapping_event
from tests.integration.web.test_reports_api import capture
from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server, make_worker
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.runtime import Runtime

RETIRED = {"outbox_id", "number"}  # names that meant one of these concepts before


@pytest.fixture
async def server(runtime: Runtime, org: OrgFixture) -> AsyncIterator[SmtpServer]:
    smtp = await start_smtp_server()
    await configure_server(runtime, org, smtp.port)
    try:
        yield smtp
    finally:
        await smtp.close()


def properties(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(component, property, its schema) of every property of every component."""
    for component, body in schema["components"]["schemas"].items():
        for name, prop in body.get("properties", {}).items():
            yield component, name, prop


def formats(prop: dict[str, Any]) -> set[str | None]:
    """The formats a property may take (``anyOf`` for the nullable ones), null left out."""
    options = prop.get("anyOf", [prop])
    return {o.get("format") for o in options if o.get("type") != "null"}


async def test_the_schema_uses_one_name_per_concept(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    found = list(properties(schema))
    assert not [(c, n) for c, n, _ in found if n in RETIRED]
    message_ids = {c: formats(p) for c, n, p in found if n == "message_id"}
    assert {"FollowUpOut", "NotificationOut", "RefusalOut"} <= set(message_ids)
    assert all(f == {"uuid"} for f in message_ids.values()), message_ids
    headers = {c for c, n, p in found if n == "message_id_header" and formats(p) == {None}}
    assert {"MessageOut", "MessageDetailOut", "RefusalOut"} <= headers
    revisions = {c for c, n, _ in found if n == "revision"}
    assert {"RevisionOut", "MappingOut", "DryRunOut"} <= revisions
    put = schema["paths"]["/api/v1/notification-mapping"]["put"]
    assert "expected_revision" in [p["name"] for p in put["parameters"]]


async def test_an_exported_notification_names_its_message_like_the_messages_api(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    await put_mapping(client, org, regional_mapping())
    report = await capture_report(client, org, (await mapping_event(client, org))["id"])
    exported = await client.post(f"/api/v1/reports/{report['id']}/export", headers=org.headers)
    assert exported.status_code == 200, exported.text
    (fired,) = exported.json()["notifications"]
    assert set(fired) == {"rule", "kind", "message_id", "recipients", "duplicate", "error"}

    await make_worker(runtime, org).run_until_idle()

    reply = await client.get(f"/api/v1/messages/{fired['message_id']}", headers=org.headers)
    assert reply.status_code == 200, reply.text
    message = reply.json()
    assert message["id"] == fired["message_id"]
    assert "message_id" not in message
    (received,) = server.recorder.messages
    assert received.parsed()["Message-ID"] == message["message_id_header"]
    listed = (await client.get("/api/v1/messages", headers=org.headers)).json()["items"]
    assert [(m["id"], m["message_id_header"]) for m in listed] == [
        (message["id"], message["message_id_header"])
    ]


async def test_a_follow_up_names_its_message_like_the_messages_api(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    smtp = await start_smtp_server()
    try:
        event, _ = await follow_ups.setup(client, runtime, org, smtp)
        report = await capture(
            client, org.headers, event["id"], lead=follow_ups.lead(language="en")
        )
        queued = await follow_ups.follow_up(client, org.headers, report["id"])
        assert queued.status_code == 200, queued.text
        assert queued.json()["status"] == "queued"
        message_id = queued.json()["message_id"]
        await make_worker(runtime, org).run_until_idle()

        message = (await client.get(f"/api/v1/messages/{message_id}", headers=org.headers)).json()
        assert message["id"] == message_id and message["kind"] == "follow_up"
        (mail,) = follow_ups.received_by(smtp, report["lead"]["email"])
        assert mail["Message-ID"] == message["message_id_header"]

        bulk = await client.post(
            "/api/v1/follow-ups/bulk", headers=org.headers, json={"report_ids": [report["id"]]}
        )
        (again,) = bulk.json()["results"]
        assert again["status"] == "already_sent" and again["message_id"] == message_id
    finally:
        await smtp.close()


async def test_a_mapping_revision_is_called_revision_everywhere(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    empty = (await client.get(MAPPING_URL, headers=org.headers)).json()
    assert empty["revision"] == 0 and "number" not in empty
    first = await put_mapping(client, org, regional_mapping())
    assert first["revision"] == 1
    changed = regional_mapping()
    changed["rules"][0]["name"] = "Regions"
    second = await client.put(
        MAPPING_URL, headers=org.headers, params={"expected_revision": 1}, json=changed
    )
    assert second.status_code == 200, second.text
    assert second.json()["revision"] == 2
    stale = await client.put(
        MAPPING_URL, headers=org.headers, params={"expected_revision": 1}, json=regional_mapping()
    )
    assert stale.status_code == 409

    listed = (await client.get(f"{MAPPING_URL}/revisions", headers=org.headers)).json()
    assert [(r["revision"], r["active"]) for r in listed] == [(2, True), (1, False)]
    assert all("number" not in r for r in listed)
    one = await client.get(f"{MAPPING_URL}/revisions/{listed[1]['id']}", headers=org.headers)
    assert one.json()["revision"] == 1

    report = await capture_report(client, org, (await mapping_event(client, org))["id"])
    run = await client.post(
        f"{MAPPING_URL}/dry-run", headers=org.headers, json={"report_id": report["id"]}
    )
    assert run.status_code == 200, run.text
    assert run.json()["revision"] == 2
