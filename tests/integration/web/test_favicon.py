"""The app's icon: linked from every page, served by the app, and /favicon.ico not a 404."""

from __future__ import annotations

import httpx

from tests.integration.web.test_ui_login import log_in
from tests.support.orgs import OrgFixture


async def test_favicon_is_linked_and_served(client: httpx.AsyncClient, org: OrgFixture) -> None:
    login = await client.get("/login")
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in login.text
    reply = await log_in(client, org.admin.email, org.admin_password)
    assert reply.status_code == 303
    dashboard = await client.get("/")
    assert 'href="/static/favicon.svg"' in dashboard.text

    icon = await client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")

    legacy = await client.get("/favicon.ico")
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("image/svg+xml")
    assert legacy.content == icon.content
