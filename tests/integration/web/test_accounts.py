"""Accounts (issue 12): change your own password, an admin's reset to a one-time password,
the login returning to the page asked for; through the UI and the API, on both databases.

Every test reads what a user meets: reply status and JSON, the page's text at the field
at fault, the cookies, the stored audit entries and the log lines."""

from __future__ import annotations

import logging
import re
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from tests.support.orgs import OrgFixture, new_member, new_org
from visitmail.adapters.db.tables import AuditRow
from visitmail.domain.identity import User
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import identity

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OLD = "old-password-1234"
NEW = "brand new password 2026"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def log_in(
    client: httpx.AsyncClient, email: str, password: str, *, next_path: str | None = None
) -> httpx.Response:
    page = await client.get("/login" + (f"?next={next_path}" if next_path else ""))
    match = CSRF.search(page.text)
    assert match
    data = {"email": email, "password": password, "csrf_token": match.group(1)}
    if next_path is not None:
        data["next"] = next_path
    return await client.post("/login", data=data)


async def csrf_of(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match
    return match.group(1)


@pytest.fixture
async def member(runtime: Runtime, org: OrgFixture) -> tuple[User, str]:
    """A ``user`` of ``org`` with the password :data:`OLD` and an API token."""
    user, token = await new_member(runtime, org, Role.USER)
    async with runtime.uow() as uow:
        await identity.set_password(uow, runtime.hasher, org.principal, user.id, password=OLD)
    return user, token


@pytest.fixture
async def other_client(app: FastAPI) -> httpx.AsyncClient:  # type: ignore[misc]
    """A second browser: another session of the same user, or another user."""
    transport = httpx.ASGITransport(app=app, client=("10.8.1.2", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def audit_of(runtime: Runtime, org: OrgFixture, target: uuid.UUID) -> list[Audit]:
    """The organization's audit entries about ``target``, oldest first, every column."""
    table = AuditRow.__table__
    async with runtime.uow(read_only=True) as uow:
        rows = await uow.session.execute(
            select(table)
            .where(table.c.organization_id == org.organization.id, table.c.target == str(target))
            .order_by(table.c.at)
        )
        return [Audit(**dict(row._mapping)) for row in rows]


class Audit:
    def __init__(self, **columns: object) -> None:
        self.columns = columns
        self.action = columns["action"]
        self.actor_id = columns["actor_id"]
        self.fields = columns["fields"]


# --- change your own password: the form ----------------------------------------------


async def test_a_user_changes_their_password_on_the_form_and_other_sessions_end(
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    member: tuple[User, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user, token = member
    assert (await log_in(client, user.email, OLD)).status_code == 303
    assert (await log_in(other_client, user.email, OLD)).status_code == 303
    old_cookie = client.cookies["vm_session"]
    # the header links to the form
    assert 'href="/account/password"' in (await client.get("/")).text
    csrf = await csrf_of(client, "/account/password")

    done = await client.post(
        "/account/password",
        data={
            "current_password": OLD,
            "new_password": NEW,
            "new_password_confirm": NEW,
            "csrf_token": csrf,
        },
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/account/password?done=changed"
    assert client.cookies["vm_session"] != old_cookie  # this session was re-issued
    notice = await client.get(done.headers["location"])
    assert notice.status_code == 200
    assert "Your password was changed" in notice.text
    assert (await client.get("/")).status_code == 200  # still logged in here
    ended = await other_client.get("/reports")  # the other browser was logged out
    assert ended.status_code == 303 and ended.headers["location"].startswith("/login")

    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as fresh:
        assert (await log_in(fresh, user.email, OLD)).status_code == 401
        assert (await log_in(fresh, user.email, NEW)).status_code == 303
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200  # kept

    entries = await audit_of(runtime, org, user.id)
    assert entries[-1].action == "user.password_change"
    assert entries[-1].fields == ["password"] and entries[-1].actor_id == user.id
    for row in entries:
        assert OLD not in repr(row.columns) and NEW not in repr(row.columns)
    assert OLD not in caplog.text and NEW not in caplog.text
    for page in (done, notice):
        assert OLD not in page.text and NEW not in page.text


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"current_password": ""}, "current-password-error", "enter your current password"),
        (
            {"current_password": "not-the-password-at-all"},
            "current-password-error",
            "is not your current password",
        ),
        (
            {"new_password": "short", "new_password_confirm": "short"},
            "new-password-error",
            "at least 12",
        ),
        (
            {"new_password": "x" * 1025, "new_password_confirm": "x" * 1025},
            "new-password-error",
            "at most 1024",
        ),
        ({"new_password": OLD, "new_password_confirm": OLD}, "new-password-error", "must differ"),
        ({"new_password_confirm": NEW + "?"}, "new-password-confirm-error", "does not match"),
    ],
)
async def test_each_form_error_is_shown_beside_its_field_and_nothing_changes(
    client: httpx.AsyncClient,
    member: tuple[User, str],
    fields: dict[str, str],
    field_id: str,
    message: str,
) -> None:
    user, _ = member
    await log_in(client, user.email, OLD)
    form = {
        "current_password": OLD,
        "new_password": NEW,
        "new_password_confirm": NEW,
        "csrf_token": await csrf_of(client, "/account/password"),
    }
    form.update(fields)
    reply = await client.post("/account/password", data=form)
    assert reply.status_code == 422
    error = re.search(rf'<p class="error" id="{field_id}"[^>]*>([^<]*)</p>', reply.text)
    assert error and message in error.group(1)
    assert reply.text.count('class="error"') == 1  # only beside the field at fault
    assert 'aria-invalid="true"' in reply.text
    for typed in {v for k, v in form.items() if k != "csrf_token" and len(v) > 3}:
        assert typed not in reply.text  # passwords are never echoed back
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as fresh:
        assert (await log_in(fresh, user.email, OLD)).status_code == 303  # unchanged


async def test_the_form_needs_its_csrf_token(
    client: httpx.AsyncClient, member: tuple[User, str]
) -> None:
    user, _ = member
    await log_in(client, user.email, OLD)
    reply = await client.post(
        "/account/password",
        data={"current_password": OLD, "new_password": NEW, "new_password_confirm": NEW},
    )
    assert reply.status_code == 403
    assert (await log_in(client, user.email, OLD)).status_code == 303  # unchanged


async def test_wrong_current_passwords_count_as_failed_logins(
    client: httpx.AsyncClient, runtime: Runtime, member: tuple[User, str]
) -> None:
    _user, token = member
    for _ in range(runtime.settings.login_max_failures):
        wrong = await client.post(
            "/api/v1/me/password",
            headers=bearer(token),
            json={"current_password": "guess-guess-guess", "new_password": NEW},
        )
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_password"
    limited = await client.post(
        "/api/v1/me/password",
        headers=bearer(token),
        json={"current_password": OLD, "new_password": NEW},
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0


# --- change your own password: the API -----------------------------------------------


async def test_the_api_changes_the_password_and_ends_the_web_sessions(
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    member: tuple[User, str],
) -> None:
    user, token = member
    await log_in(other_client, user.email, OLD)
    assert (await other_client.get("/")).status_code == 200
    reply = await client.post(
        "/api/v1/me/password",
        headers=bearer(token),
        json={"current_password": OLD, "new_password": NEW},
    )
    assert reply.status_code == 204 and reply.content == b""
    assert (await other_client.get("/")).status_code == 303
    assert (await log_in(client, user.email, NEW)).status_code == 303
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    assert (await audit_of(runtime, org, user.id))[-1].action == "user.password_change"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"new_password": NEW}, 422, "current_password"),
        ({"current_password": "", "new_password": NEW}, 422, "current_password"),
        ({"current_password": "wrong-wrong-wrong", "new_password": NEW}, 422, "current_password"),
        ({"current_password": OLD}, 422, "new_password"),
        ({"current_password": OLD, "new_password": "short"}, 422, "new_password"),
        ({"current_password": OLD, "new_password": "y" * 1025}, 422, "new_password"),
        ({"current_password": OLD, "new_password": OLD}, 422, "new_password"),
        ({"current_password": OLD, "new_password": NEW, "role": "admin"}, 422, "role"),
        ({"current_password": OLD, "new_password": 12345678901234}, 422, "new_password"),
    ],
)
async def test_api_errors_name_the_field(
    client: httpx.AsyncClient,
    member: tuple[User, str],
    body: dict[str, object],
    status: int,
    field: str,
) -> None:
    _user, token = member
    reply = await client.post("/api/v1/me/password", headers=bearer(token), json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["field"] == field
    for value in body.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in reply.text


async def test_the_api_needs_a_token(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/api/v1/me/password", json={"current_password": OLD, "new_password": NEW}
    )
    assert reply.status_code == 401


# --- an admin resets a member's password -----------------------------------------------


async def test_reset_gives_a_one_time_password_that_logs_in_once_and_forces_a_change(
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    member: tuple[User, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user, token = member
    await log_in(other_client, user.email, OLD)
    assert (await other_client.get("/")).status_code == 200

    reply = await client.post(f"/api/v1/users/{user.id}/password-reset", headers=org.headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    one_time = body["one_time_password"]
    assert len(one_time) >= 20
    assert body["user"]["must_change_password"] is True
    assert body["sessions_ended"] == 1 and body["tokens_revoked"] == 1
    # the user's session and API token are ended
    assert (await other_client.get("/")).status_code == 303
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 401
    assert (await log_in(client, user.email, OLD)).status_code == 401
    # shown once: the user as read later carries no password
    read = await client.get(f"/api/v1/users/{user.id}", headers=org.headers)
    assert read.json()["must_change_password"] is True and one_time not in read.text

    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        first = await log_in(browser, user.email, one_time, next_path="/reports")
        assert first.status_code == 303
        assert first.headers["location"] == "/account/password?next=/reports"
        # no other page opens until the password is changed; logout still works
        blocked = await browser.get("/reports?page=2")
        assert blocked.status_code == 303
        assert blocked.headers["location"] == "/account/password?next=/reports%3Fpage%3D2"
        assert (await browser.get("/")).headers["location"] == "/account/password"
        form = await browser.get(first.headers["location"])
        assert "An admin reset your password" in form.text
        assert 'name="next" value="/reports"' in form.text
        # the one-time password does not log in a second time
        async with httpx.AsyncClient(
            transport=client._transport, base_url="http://testserver"
        ) as second:
            again = await log_in(second, user.email, one_time)
            assert again.status_code == 401 and "used already" in again.text

        csrf = CSRF.search(form.text)
        assert csrf
        changed = await browser.post(
            "/account/password",
            data={
                "current_password": one_time,
                "new_password": NEW,
                "new_password_confirm": NEW,
                "csrf_token": csrf.group(1),
                "next": "/reports",
            },
        )
        assert changed.status_code == 303
        assert changed.headers["location"] == "/account/password?done=changed&next=/reports"
        done = await browser.get(changed.headers["location"])
        assert 'href="/reports"' in done.text and "An admin reset" not in done.text
        assert (await browser.get("/reports")).status_code == 200
    assert (await log_in(other_client, user.email, one_time)).status_code == 401
    assert (await log_in(other_client, user.email, NEW)).status_code == 303
    read = await client.get(f"/api/v1/users/{user.id}", headers=org.headers)
    assert read.json()["must_change_password"] is False

    actions = [(e.action, e.actor_id, e.fields) for e in await audit_of(runtime, org, user.id)]
    assert ("user.password_reset", org.admin.id, ["password"]) in actions
    assert ("user.password_change", user.id, ["password"]) in actions
    assert one_time not in caplog.text and NEW not in caplog.text


async def test_reset_is_for_admins_of_the_same_organization(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, member: tuple[User, str]
) -> None:
    user, token = member
    stranger = await new_org(runtime, name="Other")
    theirs = await client.post(
        f"/api/v1/users/{stranger.admin.id}/password-reset", headers=org.headers
    )
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    unknown = await client.post(f"/api/v1/users/{uuid.uuid4()}/password-reset", headers=org.headers)
    assert unknown.status_code == 404
    for role in (Role.REPORTER, Role.EVENT_MANAGER):
        _, weaker = await new_member(runtime, org, role)
        refused = await client.post(
            f"/api/v1/users/{user.id}/password-reset", headers=bearer(weaker)
        )
        assert refused.status_code == 403
    own = await client.post(f"/api/v1/users/{org.admin.id}/password-reset", headers=org.headers)
    assert own.status_code == 409 and own.json()["error"]["field"] == "user_id"
    assert (await log_in(client, user.email, OLD)).status_code == 303  # nothing changed
    assert (await log_in(client, stranger.admin.email, stranger.admin_password)).status_code == 303
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200


async def test_reset_on_the_users_page_shows_the_password_once(
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    member: tuple[User, str],
) -> None:
    user, _ = member
    await log_in(client, org.admin.email, org.admin_password)
    page = await client.get("/users")
    assert f'action="/users/{user.id}/password-reset"' in page.text
    assert f'action="/users/{org.admin.id}/password-reset"' not in page.text  # not yourself
    csrf = CSRF.search(page.text)
    assert csrf

    no_csrf = await client.post(f"/users/{user.id}/password-reset", data={})
    assert no_csrf.status_code == 403
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as fresh:
        assert (await log_in(fresh, user.email, OLD)).status_code == 303  # unchanged

    done = await client.post(f"/users/{user.id}/password-reset", data={"csrf_token": csrf.group(1)})
    assert done.status_code == 303
    assert done.headers["location"] == "/users?done=reset#reset-notice"
    sealed = client.cookies.get("vm_reset_notice", path="/users")
    assert sealed
    shown = await client.get("/users?done=reset")
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    one_time = re.search(
        r'id="reset-notice".*?<code class="secret-once">([^<]+)</code>', shown.text, re.S
    )
    assert one_time and user.email in shown.text
    assert one_time.group(1) not in sealed  # the cookie holds it sealed, not in clear
    assert "must change password" in shown.text
    again = await client.get("/users?done=reset")  # a reload does not show it again
    assert one_time.group(1) not in again.text and 'id="reset-notice"' not in again.text

    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        first = await log_in(browser, user.email, one_time.group(1))
        assert first.headers["location"] == "/account/password"
    entries = await audit_of(runtime, org, user.id)
    assert entries[-1].action == "user.password_reset" and entries[-1].fields == ["password"]


async def test_reset_on_the_page_refuses_other_organizations_and_non_admins(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, member: tuple[User, str]
) -> None:
    user, _ = member
    stranger = await new_org(runtime, name="Other")
    await log_in(client, org.admin.email, org.admin_password)
    csrf = await csrf_of(client, "/users")
    theirs = await client.post(
        f"/users/{stranger.admin.id}/password-reset", data={"csrf_token": csrf}
    )
    assert theirs.status_code == 404
    own = await client.post(f"/users/{org.admin.id}/password-reset", data={"csrf_token": csrf})
    assert own.status_code == 409
    assert "change it with your current one" in own.text

    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as browser:
        await log_in(browser, user.email, OLD)
        mine = await csrf_of(browser, "/account/password")
        refused = await browser.post(
            f"/users/{org.admin.id}/password-reset", data={"csrf_token": mine}
        )
        assert refused.status_code == 403
    assert (await log_in(client, stranger.admin.email, stranger.admin_password)).status_code == 303


# --- the users page: roles described, errors where they happen -------------------------


async def test_the_users_page_describes_every_role_and_shows_errors_in_their_row(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await log_in(client, org.admin.email, org.admin_password)
    page = await client.get("/users")
    for role, words in (
        ("reporter", "captures visit reports"),
        ("user", "same as reporter"),
        ("event_curator", "bulk follow-ups"),
        ("event_manager", "follow-up templates"),
        ("admin", "mail server settings"),
    ):
        line = re.search(rf'id="role-{role}"><dt>{role}</dt><dd>([^<]+)</dd>', page.text)
        assert line and words in line.group(1)
    csrf = CSRF.search(page.text)
    assert csrf
    # the only admin cannot demote themselves: said in their row, not at the top
    reply = await client.post(
        f"/users/{org.admin.id}",
        data={"role": "user", "disabled": "no", "csrf_token": csrf.group(1)},
    )
    assert reply.status_code == 409
    row = re.search(rf"<td[^>]*>{re.escape(org.admin.email)}</td>.*?</tr>", reply.text, re.S)
    assert row and f'id="name-{org.admin.id}-error"' in row.group(0)
    assert "at least one enabled admin" in row.group(0)
    assert f'id="role-{org.admin.id}" name="role"' in row.group(0)
    assert 'aria-invalid="true"' in row.group(0)
    before_add = reply.text.split('id="add-user-heading"')[0]
    assert 'class="error"' not in before_add  # no banner at the top


# --- the login returns to the page asked for ------------------------------------------


async def test_the_login_returns_to_the_page_asked_for(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    asked = await client.get("/outbox?status=failed")
    assert asked.status_code == 303
    assert asked.headers["location"] == "/login?next=/outbox%3Fstatus%3Dfailed"
    form = await client.get(asked.headers["location"])
    assert 'name="next" value="/outbox?status=failed"' in form.text
    assert "Log in to open the page you asked for" in form.text
    reply = await log_in(
        client, org.admin.email, org.admin_password, next_path="/outbox?status=failed"
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/outbox?status=failed"
    assert (await client.get(reply.headers["location"])).status_code == 200


async def test_a_wrong_password_keeps_the_page_asked_for(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    wrong = await log_in(client, org.admin.email, "wrong-wrong-wrong", next_path="/events")
    assert wrong.status_code == 401
    assert 'name="next" value="/events"' in wrong.text


HOSTILE = [
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http:evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,hi",
    "evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "/" + "a" * 2100,
    "",
]


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_next_values_go_to_the_dashboard(
    client: httpx.AsyncClient, org: OrgFixture, hostile: str
) -> None:
    page = await client.get("/login", params={"next": hostile})
    assert page.status_code == 200
    assert 'name="next"' not in page.text  # not carried on
    match = CSRF.search(page.text)
    assert match
    reply = await client.post(
        "/login",
        data={
            "email": org.admin.email,
            "password": org.admin_password,
            "csrf_token": match.group(1),
            "next": hostile[:4000],
        },
    )
    assert reply.status_code == 303
    assert reply.headers["location"] == "/"
