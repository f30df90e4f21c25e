"""Webhook secrets through the HTTP API, on both databases: admin only, values write-only
(a generated one is returned once), encrypted at rest, scoped by organization, audited."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from tests.support.orgs import OrgFixture, new_member, new_org
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.db.tables import AuditRow, WebhookSecretRow
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import webhooks

URL = "/api/v1/webhook-secrets"
SECRET = "my-own-Webhook-Secret-42"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_put_list_delete(
    client: httpx.AsyncClient, org: OrgFixture, runtime: Runtime
) -> None:
    assert (await client.get(URL, headers=org.headers)).json() == []

    put = await client.put(f"{URL}/crm", headers=org.headers, json={"secret": SECRET})
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["name"] == "crm" and body["created"] is True and body["secret"] is None
    assert SECRET not in put.text

    again = await client.put(f"{URL}/crm", headers=org.headers, json={"secret": SECRET + "x"})
    assert again.json()["created"] is False

    listed = await client.get(URL, headers=org.headers)
    assert [s["name"] for s in listed.json()] == ["crm"]
    assert set(listed.json()[0]) == {"name", "created_at", "updated_at"}
    assert SECRET not in listed.text

    async with runtime.uow() as uow:
        stored = await webhooks.secret_for_delivery(
            uow, SecretBox(runtime.keyring), org.organization.id, "crm"
        )
        raw = (
            await uow.session.execute(
                select(WebhookSecretRow.secret_enc).where(
                    WebhookSecretRow.organization_id == org.organization.id
                )
            )
        ).scalar_one()
    assert stored == SECRET + "x"
    assert SECRET not in raw

    deleted = await client.delete(f"{URL}/crm", headers=org.headers)
    assert deleted.status_code == 204
    assert (await client.get(URL, headers=org.headers)).json() == []
    gone = await client.delete(f"{URL}/crm", headers=org.headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


async def test_without_a_secret_one_is_generated_and_shown_once(
    client: httpx.AsyncClient, org: OrgFixture, runtime: Runtime
) -> None:
    put = await client.put(f"{URL}/erp", headers=org.headers)
    assert put.status_code == 200, put.text
    generated = put.json()["secret"]
    assert generated.startswith("whsec_") and len(generated) >= 40
    also = await client.put(f"{URL}/erp2", headers=org.headers, json={})
    assert also.json()["secret"] not in (None, generated)

    listed = await client.get(URL, headers=org.headers)
    assert generated not in listed.text
    async with runtime.uow() as uow:
        stored = await webhooks.secret_for_delivery(
            uow, SecretBox(runtime.keyring), org.organization.id, "erp"
        )
    assert stored == generated


@pytest.mark.parametrize("role", [Role.REPORTER, Role.USER, Role.EVENT_CURATOR, Role.EVENT_MANAGER])
async def test_only_admins(
    client: httpx.AsyncClient, org: OrgFixture, runtime: Runtime, role: Role
) -> None:
    _, token = await new_member(runtime, org, role)
    headers = bearer(token)
    assert (await client.get(URL, headers=headers)).status_code == 403
    assert (await client.put(f"{URL}/crm", headers=headers, json={})).status_code == 403
    assert (await client.delete(f"{URL}/crm", headers=headers)).status_code == 403
    assert (await client.get(URL)).status_code == 401


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("crm", {"secret": "short"}, "secret"),
        ("crm", {"secret": " padded-secret-value-123 "}, "secret"),
        ("crm", {"secret": "line\nbreak-secret-value-123"}, "secret"),
        ("bad%20name", {"secret": SECRET}, "name"),
        ("-starts-with-dash", {"secret": SECRET}, "name"),
        ("crm", {"secret": SECRET, "extra": 1}, None),
    ],
)
async def test_invalid_input_names_the_field_and_never_echoes_the_secret(
    client: httpx.AsyncClient,
    org: OrgFixture,
    name: str,
    body: dict[str, object],
    field: str | None,
) -> None:
    response = await client.put(f"{URL}/{name}", headers=org.headers, json=body)
    assert response.status_code == 422, response.text
    if field is not None:
        assert response.json()["error"]["field"] == field
    secret = body["secret"]
    assert isinstance(secret, str)
    assert secret.strip() not in response.text


async def test_secrets_are_scoped_by_organization(
    client: httpx.AsyncClient, org: OrgFixture, runtime: Runtime
) -> None:
    other = await new_org(runtime, name="Other")
    await client.put(f"{URL}/crm", headers=org.headers, json={"secret": SECRET})
    assert (await client.get(URL, headers=other.headers)).json() == []
    assert (await client.delete(f"{URL}/crm", headers=other.headers)).status_code == 404
    assert [s["name"] for s in (await client.get(URL, headers=org.headers)).json()] == ["crm"]


async def test_changes_are_audited_without_values(
    client: httpx.AsyncClient, org: OrgFixture, runtime: Runtime
) -> None:
    await client.put(f"{URL}/crm", headers=org.headers, json={"secret": SECRET})
    await client.delete(f"{URL}/crm", headers=org.headers)
    async with runtime.uow() as uow:
        rows = (
            await uow.session.execute(
                select(AuditRow.action, AuditRow.target, AuditRow.fields)
                .where(
                    AuditRow.organization_id == org.organization.id,
                    AuditRow.action.startswith("webhook_secret."),
                )
                .order_by(AuditRow.at, AuditRow.id)
            )
        ).all()
    assert [(r.action, r.target) for r in rows] == [
        ("webhook_secret.put", "webhook_secret:crm"),
        ("webhook_secret.delete", "webhook_secret:crm"),
    ]
    assert all(SECRET not in str(r.fields) for r in rows)


async def test_documented_in_openapi(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    assert {"get"} <= set(schema["paths"][URL])
    assert {"put", "delete"} <= set(schema["paths"][URL + "/{name}"])
