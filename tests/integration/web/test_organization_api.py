"""The organization's own settings: read by every member, changed by admins."""

from __future__ import annotations

import httpx

from tests.support.orgs import OrgFixture, new_member
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime


async def test_members_read_and_admins_change_the_settings(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    _user, token = await new_member(runtime, org, Role.EVENT_MANAGER)
    member = {"Authorization": f"Bearer {token}"}
    read = await client.get("/api/v1/organization", headers=member)
    assert read.status_code == 200
    assert read.json()["require_follow_up_consent"] is True  # the careful default
    refused = await client.patch(
        "/api/v1/organization", headers=member, json={"require_follow_up_consent": False}
    )
    assert refused.status_code == 403
    changed = await client.patch(
        "/api/v1/organization", headers=org.headers, json={"name": "Acme Fairs"}
    )
    assert changed.json()["name"] == "Acme Fairs"
    assert changed.json()["require_follow_up_consent"] is True
    audit = await client.get("/api/v1/organization", headers=member)
    assert audit.json()["name"] == "Acme Fairs"


async def test_bad_settings_are_422_naming_the_field(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    for body, field in [
        ({"require_follow_up_consent": "maybe"}, "require_follow_up_consent"),
        ({"name": ""}, "name"),
        ({"name": "x\nBcc: y"}, "name"),
        ({"colour": "red"}, "colour"),
    ]:
        reply = await client.patch("/api/v1/organization", headers=org.headers, json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.json()["error"]["field"] == field
    unchanged = await client.get("/api/v1/organization", headers=org.headers)
    assert unchanged.json()["name"] == org.organization.name
