"""The suppression list through the API, on both databases: list (paged, searchable,
newest first), add by hand, lift, the audit trail, roles, tenant isolation, bad input; and
a lifted address really is sendable again (issue 10, item 2)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.integration.web.test_follow_ups_api import (
    follow_up,
    follow_up_messages,
    lead,
    received_by,
    setup,
)
from tests.integration.web.test_reports_api import capture
from tests.support.orgs import OrgFixture, new_member, new_org
from tests.support.outbox import make_worker
from tests.support.smtp_servers import Script, start_smtp_server
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime

API = "/api/v1/suppressions"


def unique(prefix: str = "lead") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@Example.org"


async def add(
    client: httpx.AsyncClient, headers: dict[str, str], address: str, **body: Any
) -> httpx.Response:
    return await client.post(API, headers=headers, json={"address": address, **body})


async def listing(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    reply = await client.get(API, headers=headers, params=params)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def addresses(found: dict[str, Any]) -> list[str]:
    return [e["address"] for e in found["items"]]


def error(reply: httpx.Response) -> dict[str, Any]:
    detail: dict[str, Any] = reply.json()["error"]
    return detail


async def test_add_list_search_page_and_lift(client: httpx.AsyncClient, org: OrgFixture) -> None:
    first, second, third = unique("anna"), unique("bert"), unique("anna")
    created = await add(client, org.headers, f"  {first} ", note="asked by phone")
    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry["address"] == first.lower()
    assert entry["reason"] == "manual"
    assert entry["note"] == "asked by phone"
    assert entry["created_by"] == {"id": str(org.admin.id), "display_name": org.admin.display_name}
    assert entry["reply"] is None
    for address in (second, third):
        assert (await add(client, org.headers, address)).status_code == 201

    everything = await listing(client, org.headers)
    assert addresses(everything) == [third.lower(), second.lower(), first.lower()]
    assert everything["total"] == 3
    stamps = [e["created_at"] for e in everything["items"]]
    assert stamps == sorted(stamps, reverse=True)

    annas = await listing(client, org.headers, search="ANNA")
    assert addresses(annas) == [third.lower(), first.lower()] and annas["total"] == 2
    assert (await listing(client, org.headers, search="%"))["total"] == 0  # no wildcard
    assert (await listing(client, org.headers, search="_"))["total"] == 0

    page1 = await listing(client, org.headers, limit=2, offset=0)
    page2 = await listing(client, org.headers, limit=2, offset=2)
    assert addresses(page1) + addresses(page2) == addresses(everything)
    assert page1["total"] == page2["total"] == 3
    assert (await listing(client, org.headers, offset=2**31 - 1))["items"] == []

    again = await add(client, org.headers, first.upper())
    assert again.status_code == 409
    assert error(again)["code"] == "already_suppressed"
    assert error(again)["field"] == "address"
    assert "manual" in error(again)["message"]

    lifted = await client.delete(f"{API}/{quote(second.upper())}", headers=org.headers)
    assert lifted.status_code == 204 and lifted.content == b""
    assert addresses(await listing(client, org.headers)) == [third.lower(), first.lower()]
    gone = await client.delete(f"{API}/{quote(second)}", headers=org.headers)
    assert gone.status_code == 404 and error(gone)["code"] == "not_found"
    for hostile in ("a%00b@example.org", "%ED%A0%80@x.org", "a%0D%0Ab@x.org", "x" * 400):
        reply = await client.delete(f"{API}/{hostile}", headers=org.headers)
        assert reply.status_code == 404, (hostile, reply.text)


async def test_an_address_with_a_slash_is_lifted_by_its_encoded_path(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    odd = f"a/b%c+{uuid.uuid4().hex[:6]}@example.org"
    assert (await add(client, org.headers, odd)).status_code == 201
    lifted = await client.delete(f"{API}/{quote(odd, safe='')}", headers=org.headers)
    assert lifted.status_code == 204, lifted.text
    assert (await listing(client, org.headers, search="a/b"))["total"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "not an address"}, "address"),
        ({"address": "a@b@example.org"}, "address"),
        ({"address": "lead@example.org\r\nBcc: x@example.org"}, "address"),
        ({"address": "x" * 321 + "@example.org"}, "address"),
        ({}, "address"),
        ({"address": 5}, "address"),
        ({"address": "lead@example.org", "note": "two\nlines"}, "note"),
        ({"address": "lead@example.org", "note": "bell\x07"}, "note"),
        ({"address": "lead@example.org", "note": "n" * 501}, "note"),
        ({"address": "lead@example.org", "reason": "manual"}, "reason"),
    ],
    ids=[
        "syntax",
        "two-ats",
        "line-break",
        "too-long",
        "missing",
        "not-a-string",
        "note-newline",
        "note-control",
        "note-too-long",
        "unknown-field",
    ],
)
async def test_bad_input_is_422_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, org: OrgFixture, body: dict[str, Any], field: str
) -> None:
    reply = await client.post(API, headers=org.headers, json=body)
    assert reply.status_code == 422, reply.text
    assert error(reply)["field"] == field
    assert (await listing(client, org.headers))["total"] == 0


async def test_bad_query_and_text_are_422(client: httpx.AsyncClient, org: OrgFixture) -> None:
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"search": "x" * 321}, "search"),
        ({"search": "a\x00b"}, "search"),
    ):
        reply = await client.get(API, headers=org.headers, params=params)
        assert reply.status_code == 422, (params, reply.text)
        assert error(reply)["field"] == field
    surrogate = await client.post(
        API,
        headers={**org.headers, "Content-Type": "application/json"},
        content=b'{"address": "lead@example.org", "note": "\\ud800"}',
    )
    assert surrogate.status_code == 422 and error(surrogate)["field"] == "note"
    assert (await listing(client, org.headers))["total"] == 0


async def test_who_may_read_and_manage(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    listed = unique()
    assert (await add(client, org.headers, listed)).status_code == 201
    for role, reads, manages in (
        (Role.REPORTER, False, False),
        (Role.USER, False, False),
        (Role.EVENT_CURATOR, True, False),
        (Role.EVENT_MANAGER, True, True),
    ):
        _, token = await new_member(runtime, org, role)
        headers = {"Authorization": f"Bearer {token}"}
        read = await client.get(API, headers=headers)
        assert read.status_code == (200 if reads else 403), role
        assert (await client.get(f"{API}/audit", headers=headers)).status_code == (
            200 if reads else 403
        )
        mine = unique(role.value)
        added = await add(client, headers, mine)
        assert added.status_code == (201 if manages else 403), role
        if not reads:
            assert error(read)["code"] == "forbidden"
        if not manages:
            assert error(added)["code"] == "forbidden"
        lifted = await client.delete(f"{API}/{quote(listed)}", headers=headers)
        assert lifted.status_code == (204 if manages else 403), role
        if manages:
            assert (await add(client, headers, listed)).status_code == 201
    assert (await client.get(API)).status_code == 401


async def test_another_organizations_list_is_invisible(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    rival = await new_org(runtime, "Rival")
    theirs = unique("theirs")
    assert (await add(client, rival.headers, theirs)).status_code == 201
    mine = await listing(client, org.headers)
    assert mine["total"] == 0 and mine["items"] == []
    assert (await listing(client, org.headers, search="theirs"))["total"] == 0
    assert (await client.delete(f"{API}/{quote(theirs)}", headers=org.headers)).status_code == 404
    assert (await client.get(f"{API}/audit", headers=org.headers)).json() == []
    assert addresses(await listing(client, rival.headers)) == [theirs.lower()]
    # The same address may be on both lists, each organization's own.
    assert (await add(client, org.headers, theirs)).status_code == 201


async def test_add_and_lift_are_audited_with_who_and_when(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    manager, token = await new_member(runtime, org, Role.EVENT_MANAGER)
    address = unique()
    assert (await add(client, org.headers, address)).status_code == 201
    lift = await client.delete(
        f"{API}/{quote(address)}", headers={"Authorization": f"Bearer {token}"}
    )
    assert lift.status_code == 204
    assert (await add(client, org.headers, address)).status_code == 201
    assert (await add(client, org.headers, address)).status_code == 409  # not audited

    trail = (await client.get(f"{API}/audit", headers=org.headers)).json()
    assert [(c["action"], c["address"], c["actor_name"]) for c in trail] == [
        ("add", address.lower(), org.admin.display_name),
        ("lift", address.lower(), manager.display_name),
        ("add", address.lower(), org.admin.display_name),
    ]
    assert trail[1]["actor_id"] == str(manager.id)
    assert trail[0]["at"] >= trail[1]["at"] >= trail[2]["at"]
    assert len((await client.get(f"{API}/audit?limit=1", headers=org.headers)).json()) == 1


async def test_a_refused_address_shows_the_reply_and_a_lift_makes_it_sendable(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    """The entry carries the evidence; after the lift the old refusal in the outbox no
    longer suppresses the address (a bulk follow-up is queued and delivered); a new
    refusal suppresses it again."""
    gone = f"gone-{uuid.uuid4().hex[:8]}@example.de"
    refusal = f"550 5.1.1 <{gone}>: Recipient address rejected: User unknown"
    refusing = True
    server = await start_smtp_server(
        script=Script(rcpt=lambda a: refusal if refusing and a == gone else None)
    )
    try:
        event, _ = await setup(client, runtime, org, server)
        first = await capture(client, org.headers, event["id"], lead=lead(email=gone))
        assert (await follow_up(client, org.headers, first["id"])).json()["status"] == "queued"
        await make_worker(runtime, org).run_until_idle()
        [refused] = await follow_up_messages(client, org)
        second = await capture(client, org.headers, event["id"], lead=lead(email=gone))
        assert (await follow_up(client, org.headers, second["id"])).json()["status"] == (
            "suppressed"
        )

        [entry] = (await listing(client, org.headers))["items"]
        assert entry["address"] == gone and entry["reason"] == "rejected"
        assert entry["created_by"] is None
        assert entry["reply"] == {
            "code": 550,
            "enhanced_status": "5.1.1",
            "text": refusal.removeprefix("550 "),
            "message_id": refused["id"],
            "message_id_header": refused["message_id_header"],
        }

        refusing = False  # the lead's mailbox exists again
        assert (await client.delete(f"{API}/{gone}", headers=org.headers)).status_code == 204
        bulk = await client.post(
            "/api/v1/follow-ups/bulk", headers=org.headers, json={"report_ids": [second["id"]]}
        )
        assert bulk.status_code == 200, bulk.text
        assert bulk.json()["summary"]["queued"] == 1
        await make_worker(runtime, org).run_until_idle()
        assert len(received_by(server, gone)) == 1
        assert (await listing(client, org.headers))["total"] == 0

        refusing = True  # refused again after the lift: suppressed again
        third = await capture(client, org.headers, event["id"], lead=lead(email=gone))
        assert (await follow_up(client, org.headers, third["id"])).json()["status"] == "queued"
        await make_worker(runtime, org).run_until_idle()
        fourth = await capture(client, org.headers, event["id"], lead=lead(email=gone))
        assert (await follow_up(client, org.headers, fourth["id"])).json()["status"] == (
            "suppressed"
        )
        [again] = (await listing(client, org.headers))["items"]
        assert again["reason"] == "rejected" and again["reply"]["message_id"] != refused["id"]
    finally:
        await server.close()


async def test_the_longest_addresses_are_listed_lifted_and_audited(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    """An audit entry names the address: a 241-character one fits (PostgreSQL refused
    more than 200 in audit_log.target before migration 0011)."""
    long_address = "a" * 64 + "@" + ("b" * 60 + ".") * 2 + "c" * 50 + ".org"
    assert len(long_address) == 241
    assert (await add(client, org.headers, long_address)).status_code == 201
    assert (await client.delete(f"{API}/{long_address}", headers=org.headers)).status_code == 204
    trail = (await client.get(f"{API}/audit", headers=org.headers)).json()
    assert [c["address"] for c in trail] == [long_address, long_address]
