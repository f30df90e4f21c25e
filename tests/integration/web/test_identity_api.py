"""Organizations, users and tokens through the HTTP API, on both databases."""

from __future__ import annotations

import httpx
import pytest

from tests.support.orgs import OrgFixture, new_member, new_org, unique_email
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_initial_token_identifies_admin_and_organization(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.get("/api/v1/me", headers=org.headers)
    assert reply.status_code == 200
    body = reply.json()
    assert body["user"]["email"] == org.admin.email
    assert body["user"]["role"] == "admin"
    assert body["organization"]["id"] == str(org.organization.id)


async def test_missing_and_unknown_tokens_are_refused(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/me")
    assert missing.status_code == 401
    assert missing.json()["error"]["field"] == "authorization"
    unknown = await client.get("/api/v1/me", headers=bearer("vm_00000000_nope"))
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "not_authenticated"


async def test_user_lifecycle_create_read_update_disable(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    email = unique_email("ann")
    created = await client.post(
        "/api/v1/users",
        headers=org.headers,
        json={"email": email, "role": "reporter", "display_name": " Ann Example "},
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["role"] == "reporter"
    assert user["display_name"] == "Ann Example"
    assert len(user["initial_password"]) >= 20
    listed = await client.get("/api/v1/users", headers=org.headers)
    assert email in [u["email"] for u in listed.json()]
    # no password in any form; the one flag about it is a boolean
    assert all(
        "password" not in key or (key == "must_change_password" and u[key] is False)
        for u in listed.json()
        for key in u
    )

    promoted = await client.patch(
        f"/api/v1/users/{user['id']}", headers=org.headers, json={"role": "event_manager"}
    )
    assert promoted.json()["role"] == "event_manager"
    disabled = await client.patch(
        f"/api/v1/users/{user['id']}", headers=org.headers, json={"disabled": True}
    )
    assert disabled.json()["disabled"] is True
    again = await client.get(f"/api/v1/users/{user['id']}", headers=org.headers)
    assert again.json()["disabled"] is True and again.json()["role"] == "event_manager"


async def test_duplicate_email_is_a_conflict_naming_the_field(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.post(
        "/api/v1/users",
        headers=org.headers,
        json={"email": org.admin.email, "role": "user", "display_name": "Twin"},
    )
    assert reply.status_code == 409
    assert reply.json()["error"]["field"] == "email"


async def test_last_admin_cannot_demote_themselves(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.patch(
        f"/api/v1/users/{org.admin.id}", headers=org.headers, json={"role": "user"}
    )
    assert reply.status_code == 409
    assert reply.json()["error"]["field"] == "role"
    me = await client.get("/api/v1/me", headers=org.headers)
    assert me.json()["user"]["role"] == "admin"


async def test_token_lifecycle_issue_use_list_revoke(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    issued = await client.post("/api/v1/tokens", headers=org.headers, json={"name": "scanner app"})
    assert issued.status_code == 201
    secret = issued.json()["token"]
    assert secret.startswith(issued.json()["prefix"])
    assert (await client.get("/api/v1/me", headers=bearer(secret))).status_code == 200

    listed = (await client.get("/api/v1/tokens", headers=org.headers)).json()
    mine = [t for t in listed if t["id"] == issued.json()["id"]]
    assert mine and "token" not in mine[0]
    assert mine[0]["last_used_at"] is not None

    revoked = await client.delete(f"/api/v1/tokens/{issued.json()['id']}", headers=org.headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    refused = await client.get("/api/v1/me", headers=bearer(secret))
    assert refused.status_code == 401


async def test_token_of_disabled_user_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    user, token = await new_member(runtime, org, Role.USER)
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    await client.patch(f"/api/v1/users/{user.id}", headers=org.headers, json={"disabled": True})
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 401


@pytest.mark.parametrize("role", [Role.REPORTER, Role.USER, Role.EVENT_CURATOR, Role.EVENT_MANAGER])
async def test_only_admins_manage_users(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, role: Role
) -> None:
    user, token = await new_member(runtime, org, role)
    listed = await client.get("/api/v1/users", headers=bearer(token))
    assert listed.status_code == 403
    assert listed.json()["error"]["code"] == "forbidden"
    created = await client.post(
        "/api/v1/users",
        headers=bearer(token),
        json={"email": unique_email(), "role": "admin", "display_name": "Eve"},
    )
    assert created.status_code == 403
    # everyone may read themselves and issue their own tokens
    assert (await client.get(f"/api/v1/users/{user.id}", headers=bearer(token))).status_code == 200
    issued = await client.post("/api/v1/tokens", headers=bearer(token), json={"name": "mine"})
    assert issued.status_code == 201
    others = await client.get(f"/api/v1/users/{org.admin.id}", headers=bearer(token))
    assert others.status_code == 403


async def test_non_admin_sees_only_own_tokens_and_cannot_revoke_others(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    _user, token = await new_member(runtime, org, Role.USER)
    listed = (await client.get("/api/v1/tokens", headers=bearer(token))).json()
    assert len(listed) == 1
    admin_tokens = (await client.get("/api/v1/tokens", headers=org.headers)).json()
    admin_own = next(t for t in admin_tokens if t["user_id"] == str(org.admin.id))
    reply = await client.delete(f"/api/v1/tokens/{admin_own['id']}", headers=bearer(token))
    assert reply.status_code == 404
    assert (await client.get("/api/v1/me", headers=org.headers)).status_code == 200


async def test_other_organizations_objects_answer_404(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    other = await new_org(runtime, name="Other")
    other_user, _ = await new_member(runtime, other, Role.USER)
    other_tokens = (await client.get("/api/v1/tokens", headers=other.headers)).json()

    for method, url, body in [
        ("GET", f"/api/v1/users/{other_user.id}", None),
        ("PATCH", f"/api/v1/users/{other_user.id}", {"role": "admin"}),
        ("DELETE", f"/api/v1/tokens/{other_tokens[0]['id']}", None),
    ]:
        reply = await client.request(method, url, headers=org.headers, json=body)
        assert reply.status_code == 404, (method, url, reply.text)
        assert other_user.email not in reply.text
    listed = (await client.get("/api/v1/users", headers=org.headers)).json()
    assert other_user.email not in [u["email"] for u in listed]
    still = await client.get(f"/api/v1/users/{other_user.id}", headers=other.headers)
    assert still.json()["role"] == "user"
    assert (await client.get("/api/v1/me", headers=other.headers)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "user", "display_name": "X"}, "email"),
        ({"email": "x@example.com", "display_name": "X"}, "role"),
        ({"email": "x@example.com", "role": "emperor", "display_name": "X"}, "role"),
        ({"email": 42, "role": "user", "display_name": "X"}, "email"),
        ({"email": "not-an-address", "role": "user", "display_name": "X"}, "email"),
        (
            {"email": "a@example.com\r\nBcc: b@example.com", "role": "user", "display_name": "X"},
            "email",
        ),
        (
            {"email": "x@example.com", "role": "user", "display_name": "X", "is_root": True},
            "is_root",
        ),
        (
            {"email": "x@example.com", "role": "user", "display_name": "X", "password": "short"},
            "password",
        ),
        # a name is required: it signs the user's follow-ups (issue 10, item 13)
        ({"email": "x@example.com", "role": "user"}, "display_name"),
        ({"email": "x@example.com", "role": "user", "display_name": ""}, "display_name"),
        ({"email": "x@example.com", "role": "user", "display_name": "   "}, "display_name"),
        ({"email": "x@example.com", "role": "user", "display_name": "Ann\u2028X"}, "display_name"),
    ],
)
async def test_bad_user_input_answers_422_naming_the_field(
    client: httpx.AsyncClient, org: OrgFixture, body: dict[str, object], field: str
) -> None:
    before = len((await client.get("/api/v1/users", headers=org.headers)).json())
    reply = await client.post("/api/v1/users", headers=org.headers, json=body)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["field"] == field
    assert error["message"]
    after = len((await client.get("/api/v1/users", headers=org.headers)).json())
    assert after == before  # nothing half-written


async def test_malformed_json_and_non_object_bodies_are_422_on_body(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    headers = {**org.headers, "content-type": "application/json"}
    broken = await client.post("/api/v1/users", headers=headers, content=b'{"email": ')
    assert broken.status_code == 422
    assert broken.json()["error"]["field"] == "body"
    listed = await client.post("/api/v1/tokens", headers=headers, content=b"[1, 2]")
    assert listed.status_code == 422
    assert listed.json()["error"]["field"] == "body"


async def test_oversize_body_is_413_json(client: httpx.AsyncClient, org: OrgFixture) -> None:
    huge = {"name": "x" * 70_000}
    reply = await client.post("/api/v1/tokens", headers=org.headers, json=huge)
    assert reply.status_code == 413
    assert reply.json()["error"] == {
        "code": "too_large",
        "message": "the body exceeds 64000 bytes",
        "field": "body",
    }


async def test_oversize_body_without_content_length_is_413(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 5000

    reply = await client.post(
        "/api/v1/tokens",
        headers={**org.headers, "content-type": "application/json"},
        content=chunks(),
    )
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "too_large"


async def test_bad_path_parameter_is_422_naming_it(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.get("/api/v1/users/not-a-uuid", headers=org.headers)
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "user_id"


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await client.put("/healthz")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
