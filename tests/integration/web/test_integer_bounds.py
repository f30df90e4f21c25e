"""Issue 10, item 7: every integer that enters through the API is bounded, so a huge value
is a 422 naming the parameter, never a database overflow (500), on both databases."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.web.test_reports_api import capture, live_event
from tests.support.orgs import OrgFixture

HUGE = 2**63


@pytest.mark.parametrize(
    "path",
    ["/api/v1/messages", "/api/v1/reports", "/api/v1/notification-mapping/revisions"],
)
@pytest.mark.parametrize("value", [HUGE, 2**31])
async def test_a_huge_offset_is_refused_naming_it(
    client: httpx.AsyncClient, org: OrgFixture, path: str, value: int
) -> None:
    reply = await client.get(path, headers=org.headers, params={"offset": value})
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "offset"


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/reports"])
async def test_the_largest_offset_allowed_answers_an_empty_page(
    client: httpx.AsyncClient, org: OrgFixture, path: str
) -> None:
    reply = await client.get(path, headers=org.headers, params={"offset": 2**31 - 1})
    assert reply.status_code == 200, reply.text


async def test_a_huge_expected_revision_is_refused_naming_it(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.put(
        "/api/v1/notification-mapping",
        headers=org.headers,
        params={"expected_revision": HUGE},
        json={"rules": []},
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "expected_revision"


async def test_a_huge_report_revision_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"])
    reply = await client.put(
        f"/api/v1/reports/{report['id']}",
        headers=org.headers,
        json={"revision": HUGE, "notes": "changed"},
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "revision"
    stored = await client.get(f"/api/v1/reports/{report['id']}", headers=org.headers)
    assert stored.json()["notes"] == report["notes"]
    assert stored.json()["revision"] == report["revision"]
