"""The web UI's login: CSRF, sessions, rate limit, role-appropriate pages."""

from __future__ import annotations

import re

import httpx

from tests.support.orgs import OrgFixture, new_member, new_org
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def login_form(client: httpx.AsyncClient) -> str:
    page = await client.get("/login")
    assert page.status_code == 200
    match = CSRF.search(page.text)
    assert match, "the login form carries a CSRF token"
    return match.group(1)


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    token = await login_form(client)
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )


async def test_login_without_csrf_token_is_refused(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await login_form(client)  # the cookie is set, but the form field is missing
    reply = await client.post(
        "/login", data={"email": org.admin.email, "password": org.admin_password}
    )
    assert reply.status_code == 403
    assert "CSRF" in reply.text
    assert "vm_session" not in reply.cookies


async def test_login_with_forged_csrf_token_is_refused(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await login_form(client)
    reply = await client.post(
        "/login",
        data={"email": org.admin.email, "password": org.admin_password, "csrf_token": "forged"},
    )
    assert reply.status_code == 403


async def test_login_opens_a_session_and_shows_the_dashboard(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await log_in(client, org.admin.email, org.admin_password)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/"
    cookie = reply.headers["set-cookie"]
    assert "vm_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    dashboard = await client.get("/")
    assert dashboard.status_code == 200
    assert org.organization.name in dashboard.text
    assert org.admin.email in dashboard.text


async def test_wrong_password_is_refused_without_saying_which_part(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    wrong = await log_in(client, org.admin.email, "not-the-password")
    unknown = await log_in(client, "nobody@example.com", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "email or password is wrong" in wrong.text
    assert "email or password is wrong" in unknown.text
    assert (await client.get("/")).status_code == 303  # still logged out


async def test_repeated_failures_are_rate_limited_even_with_the_right_password(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    target = await new_org(runtime, name="Target")
    for _ in range(runtime.settings.login_max_failures):
        assert (await log_in(client, target.admin.email, "guess-guess-guess")).status_code == 401
    limited = await log_in(client, target.admin.email, target.admin_password)
    assert limited.status_code == 429
    assert "too many failed logins" in limited.text
    # Retry-After says the same wait as the page: whole seconds, within the window.
    wait = int(limited.headers["retry-after"])
    assert 0 < wait <= 15 * 60 + 1
    assert f"try again in {wait} seconds" in limited.text
    assert "vm_session" not in limited.headers.get("set-cookie", "")


async def test_logout_ends_the_session_and_needs_its_csrf_token(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await log_in(client, org.admin.email, org.admin_password)
    page = await client.get("/")
    token = CSRF.search(page.text)
    assert token
    refused = await client.post("/logout", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert (await client.get("/")).status_code == 200
    done = await client.post("/logout", data={"csrf_token": token.group(1)})
    assert done.status_code == 303
    assert (await client.get("/")).status_code == 303


async def test_admin_adds_a_user_on_the_users_page(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await log_in(client, org.admin.email, org.admin_password)
    page = await client.get("/users")
    assert page.status_code == 200
    token = CSRF.search(page.text)
    assert token
    added = await client.post(
        "/users",
        data={
            "email": "new.colleague@example.org",
            "role": "event_curator",
            "display_name": "New Colleague",
            "csrf_token": token.group(1),
        },
    )
    # Post/Redirect/Get: the initial password is shown once after the redirect
    assert added.status_code == 303, added.text
    assert added.headers["location"] == "/users?done=created#created-notice"
    sealed = client.cookies.get("vm_created_notice", path="/users")
    assert sealed
    shown = await client.get("/users?done=created")
    assert shown.headers["cache-control"] == "no-store"
    notice = re.search(r'<section [^>]*id="created-notice".*?</section>', shown.text, re.S)
    assert notice, shown.text
    assert "new.colleague@example.org" in notice.group(0) and "event_curator" in notice.group(0)
    password = re.search(r'<code class="secret-once">([^<]+)</code>', notice.group(0))
    assert password and password.group(1) not in sealed
    again = await client.get("/users?done=created")  # a reload adds nobody and shows no password
    assert 'id="created-notice"' not in again.text and password.group(1) not in again.text
    api = await client.get("/api/v1/users", headers=org.headers)
    assert {"new.colleague@example.org": "event_curator"}.items() <= {
        u["email"]: u["role"] for u in api.json()
    }.items()


async def test_users_page_shows_field_errors_and_keeps_input(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await log_in(client, org.admin.email, org.admin_password)
    token = CSRF.search((await client.get("/users")).text)
    assert token
    reply = await client.post(
        "/users", data={"email": "not an email", "role": "user", "csrf_token": token.group(1)}
    )
    assert reply.status_code == 422
    assert 'id="new-email-error"' in reply.text
    assert 'value="not an email"' in reply.text


async def test_users_form_without_csrf_changes_nothing(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await log_in(client, org.admin.email, org.admin_password)
    reply = await client.post("/users", data={"email": "sneaky@example.org", "role": "admin"})
    assert reply.status_code == 403
    api = await client.get("/api/v1/users", headers=org.headers)
    assert "sneaky@example.org" not in [u["email"] for u in api.json()]


async def test_non_admins_have_no_users_page_or_link(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    from visitmail.services import identity

    user, _ = await new_member(runtime, org, Role.REPORTER)
    async with runtime.uow() as uow:
        password = await identity.set_password(
            uow, runtime.hasher, org.principal, user.id, password=None
        )
    assert password
    await log_in(client, user.email, password)
    dashboard = await client.get("/")
    assert dashboard.status_code == 200
    assert 'href="/users"' not in dashboard.text
    assert (await client.get("/users")).status_code == 403


async def test_pages_need_a_session(client: httpx.AsyncClient) -> None:
    for path, login in (("/", "/login"), ("/users", "/login?next=/users")):
        reply = await client.get(path)
        assert reply.status_code == 303
        assert reply.headers["location"] == login
