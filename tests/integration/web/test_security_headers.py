"""Issue 10, item 12 (headers): every page carries a policy against click-jacking and
foreign scripts; every response carries nosniff and a same-origin referrer policy."""

from __future__ import annotations

import httpx

from tests.support.orgs import OrgFixture


async def test_pages_forbid_framing_and_foreign_scripts(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"


async def test_api_answers_carry_nosniff_and_referrer_policy(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    for reply in (
        await client.get("/api/v1/reports", headers=org.headers),
        await client.get("/api/v1/reports", headers={"Authorization": "Bearer nope"}),
        await client.get("/healthz"),
    ):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "same-origin"
        assert "content-security-policy" not in reply.headers  # JSON, not a page


async def test_the_guards_own_answers_carry_them_too(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.post(
        "/api/v1/reports",
        headers={**org.headers, "Content-Type": "application/json"},
        content=b'{"notes": "\\ud800"}',
    )
    assert reply.status_code == 422
    assert reply.headers["x-content-type-options"] == "nosniff"
