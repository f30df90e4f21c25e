"""``/api/v1/bounce-mailbox`` through the HTTP app, on SQLite and PostgreSQL, with a real
Dovecot behind the test endpoint: settings with a write-only password, clear 4xx errors
naming the field, the test's step and fix, roles and organizations apart."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.imap.conftest import BOUNCES, PASSWORD, SAMPLES
from tests.support.dovecot_server import DovecotServer
from tests.support.orgs import OrgFixture, new_member, new_org
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime


def body(dovecot: DovecotServer, **changes: Any) -> dict[str, Any]:
    return {
        "host": dovecot.host,
        "port": dovecot.tls_port,
        "security": "tls",
        "username": BOUNCES,
        "password": PASSWORD,
        "folder": "INBOX",
        **changes,
    }


async def test_settings_round_trip_with_a_write_only_password(
    api: httpx.AsyncClient, admin: OrgFixture, dovecot: DovecotServer
) -> None:
    missing = await api.get("/api/v1/bounce-mailbox", headers=admin.headers)
    assert missing.status_code == 404

    saved = await api.put("/api/v1/bounce-mailbox", headers=admin.headers, json=body(dovecot))
    assert saved.status_code == 200, saved.text
    assert PASSWORD not in saved.text
    out = saved.json()
    assert (out["username"], out["password_set"], out["state"]["reading"]) == (BOUNCES, True, False)

    kept = await api.put(
        "/api/v1/bounce-mailbox",
        headers=admin.headers,
        json=body(dovecot, password=None, folder="INBOX"),
    )
    assert kept.status_code == 200 and kept.json()["password_set"] is True

    read = await api.get("/api/v1/bounce-mailbox", headers=admin.headers)
    assert read.json()["host"] == dovecot.host

    gone = await api.delete("/api/v1/bounce-mailbox", headers=admin.headers)
    assert gone.status_code == 204
    assert (await api.get("/api/v1/bounce-mailbox", headers=admin.headers)).status_code == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"host": "imap example.com"}, "host"),
        ({"port": 0}, "port"),
        ({"folder": 'In"box'}, "folder"),
        ({"folder": "x" * 201}, "folder"),
        ({"security": "plain"}, "security"),
        ({"username": "a\r\nb@example.com"}, "username"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(
    api: httpx.AsyncClient,
    admin: OrgFixture,
    dovecot: DovecotServer,
    changes: dict[str, Any],
    field: str,
) -> None:
    reply = await api.put(
        "/api/v1/bounce-mailbox", headers=admin.headers, json=body(dovecot, **changes)
    )
    assert reply.status_code == 422, reply.text
    assert field in reply.json()["error"]["field"]
    assert (await api.get("/api/v1/bounce-mailbox", headers=admin.headers)).status_code == 404


async def test_own_username_needs_a_password(
    api: httpx.AsyncClient, admin: OrgFixture, dovecot: DovecotServer
) -> None:
    reply = await api.put(
        "/api/v1/bounce-mailbox", headers=admin.headers, json=body(dovecot, password=None)
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "password"


async def test_the_test_signs_in_and_counts_reports_without_changing_anything(
    api: httpx.AsyncClient, admin: OrgFixture, dovecot: DovecotServer
) -> None:
    await api.put("/api/v1/bounce-mailbox", headers=admin.headers, json=body(dovecot))
    dovecot.deliver(BOUNCES, (SAMPLES / "postfix_bounce.eml").read_bytes())
    dovecot.deliver(BOUNCES, b"From: a@example.com\r\nSubject: hello\r\n\r\nhi\r\n")

    tested = await api.post("/api/v1/bounce-mailbox/test", headers=admin.headers)

    assert tested.status_code == 200, tested.text
    assert tested.json() | {"looked_back_days": 3} == {
        "ok": True,
        "step": None,
        "error": None,
        "messages_in_folder": 2,
        "reports_seen": 1,
        "looked_back_days": 3,
    }
    state = (await api.get("/api/v1/bounce-mailbox", headers=admin.headers)).json()["state"]
    assert state == {
        "last_polled_at": None,
        "last_error": None,
        "reports_found": 0,
        "reading": False,
    }


async def test_a_failing_test_names_the_step_and_the_fix(
    api: httpx.AsyncClient, admin: OrgFixture, dovecot: DovecotServer
) -> None:
    wrong = "Wrong-Returns-Pa55"
    await api.put(
        "/api/v1/bounce-mailbox", headers=admin.headers, json=body(dovecot, password=wrong)
    )
    tested = (await api.post("/api/v1/bounce-mailbox/test", headers=admin.headers)).json()
    assert (tested["ok"], tested["step"]) == (False, "login")
    assert "app password" in tested["error"] and wrong not in tested["error"]


async def test_only_admins_and_only_their_organization(
    api: httpx.AsyncClient, admin: OrgFixture, dovecot: DovecotServer, loopback_runtime: Runtime
) -> None:
    await api.put("/api/v1/bounce-mailbox", headers=admin.headers, json=body(dovecot))
    _, manager_token = await new_member(loopback_runtime, admin, Role.EVENT_MANAGER)
    manager = {"Authorization": f"Bearer {manager_token}"}
    assert (await api.get("/api/v1/bounce-mailbox", headers=manager)).status_code == 403
    assert (
        await api.put("/api/v1/bounce-mailbox", headers=manager, json=body(dovecot))
    ).status_code == 403
    other = await new_org(loopback_runtime)
    assert (await api.get("/api/v1/bounce-mailbox", headers=other.headers)).status_code == 404
