"""The Suppressions page, on both databases: the list with the reason in plain words and
the server's reply, search and pages, add and lift through CSRF-protected forms that
redirect (Post/Redirect/Get), errors next to their field, the recent changes, roles."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.integration.web.test_outbox_pages import csrf_of, log_in_as
from tests.support.orgs import OrgFixture
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services.follow_up_ports import Refusal

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def test_list_add_search_lift_and_changes(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    refused = f"gone-{uuid.uuid4().hex[:6]}@example.de"
    outbox_id = uuid.uuid4()
    async with runtime.uow() as uow:
        await uow.suppressions.add_many(
            org.organization.id,
            [refused],
            SuppressionReason.REJECTED,
            NOW,
            refusals={
                refused: Refusal(550, "5.1.1", "5.1.1 <x>: User unknown", outbox_id, "<m@x>")
            },
        )
        for i in range(30):
            await uow.suppressions.add(
                org.organization.id,
                f"old{i:02}@example.org",
                SuppressionReason.UNSUBSCRIBED,
                NOW - timedelta(days=1, minutes=i),
            )
        await uow.commit()
    await log_in_as(client, runtime, org, Role.ADMIN)

    page = await client.get("/suppressions")
    assert page.status_code == 200
    assert 'href="/suppressions" aria-current="page"' in page.text  # in the navigation
    assert "31 addresses" in page.text
    assert "refused this address permanently" in page.text
    assert html.escape("550 5.1.1 <x>: User unknown") in page.text
    assert f'href="/outbox/{outbox_id}"' in page.text
    assert "old23@example.org" in page.text and "old24@example.org" not in page.text
    older = await client.get("/suppressions?page=2")
    assert "old24@example.org" in older.text and "old23@example.org" not in older.text

    found = await client.get("/suppressions", params={"q": "OLD1"})
    assert "10 addresses match" in found.text
    assert "old13@example.org" in found.text and refused not in found.text

    token = await csrf_of(client, "/suppressions")
    bad = await client.post(
        "/suppressions", data={"csrf_token": token, "address": "not an address", "note": ""}
    )
    assert bad.status_code == 422
    assert 'id="add-address-error"' in bad.text and 'value="not an address"' in bad.text
    twice = await client.post("/suppressions", data={"csrf_token": token, "address": refused})
    assert twice.status_code == 409 and "already on the suppression list" in twice.text

    added = await client.post(
        "/suppressions",
        data={"csrf_token": token, "address": "New@Example.org", "note": "asked by phone"},
    )
    assert added.status_code == 303
    landed = await client.get(added.headers["location"])
    assert "new@example.org is on the suppression list now." in landed.text
    assert "Added by hand." in landed.text and "Note: asked by phone" in landed.text

    lifted = await client.post("/suppressions/lift", data={"csrf_token": token, "address": refused})
    assert lifted.status_code == 303
    after = await client.get(lifted.headers["location"])
    assert f"{refused} can receive follow-ups again." in after.text
    assert "31 addresses" in after.text  # one added, one lifted
    changes = after.text.split("Recent changes", 1)[1]
    assert f"lifted <strong>{refused}</strong>" in changes
    assert "added <strong>new@example.org</strong>" in changes

    missing = await client.post(
        "/suppressions/lift", data={"csrf_token": token, "address": refused}
    )
    assert missing.status_code == 404
    forged = await client.post(
        "/suppressions/lift", data={"csrf_token": "forged", "address": "new@example.org"}
    )
    assert forged.status_code == 403
    assert "new@example.org" in (await client.get("/suppressions")).text


async def test_curators_read_without_forms_and_users_are_refused(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    page = await client.get("/suppressions")
    assert page.status_code == 200 and "Add an address" not in page.text
    token = await csrf_of(client, "/suppressions")
    refused = await client.post(
        "/suppressions", data={"csrf_token": token, "address": "a@example.org"}
    )
    assert refused.status_code == 403

    client.cookies.clear()
    await log_in_as(client, runtime, org, Role.USER)
    dashboard = await client.get("/")
    assert 'href="/suppressions"' not in dashboard.text
    assert (await client.get("/suppressions")).status_code == 403
