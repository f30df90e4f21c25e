"""The Relay webhooks page, on both databases: admin only; the URL and a generated password
shown once (gone after a reload), verification data saved through the form and shown after
reload, an error beside the field, the self-test's result, delete behind a confirmation."""

from __future__ import annotations

import base64
import html
import re

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.web.test_outbox_pages import csrf_of, log_in_as
from tests.support.orgs import OrgFixture
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime

PAGE = "/settings/relay-webhooks"


async def test_create_show_once_configure_test_and_delete(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.ADMIN)
    smtp_page = await client.get("/settings/smtp")
    assert f'href="{PAGE}"' in smtp_page.text
    csrf = await csrf_of(client, PAGE)
    empty = await client.get(PAGE)
    assert "No endpoints yet." in empty.text

    created = await client.post(f"{PAGE}/create", data={"csrf_token": csrf, "provider": "brevo"})
    assert created.status_code == 201, created.text
    url = re.search(r'<code id="shown-url">([^<]+)</code>', created.text)
    password = re.search(r'<code id="shown-password">([^<]+)</code>', created.text)
    assert url and password
    assert "/api/v1/relay-webhooks/brevo/" in url.group(1)
    reloaded = await client.get(PAGE)
    assert url.group(1) not in reloaded.text and password.group(1) not in reloaded.text
    assert 'data-label="Events"' in reloaded.text and "0 applied" in reloaded.text

    tested = await client.post(f"{PAGE}/brevo/self-test", data={"csrf_token": csrf})
    assert tested.status_code == 200
    assert "passed the endpoint&#39;s check" in tested.text or "passed the endpoint's check" in (
        tested.text
    )
    assert "1 unmatched" in tested.text
    after_test = await client.get(PAGE)
    assert "1 not ours" in after_test.text

    regenerated = await client.post(
        f"{PAGE}/brevo/verification",
        data={"csrf_token": csrf, "username": "brevo-hook", "generate_password": "1"},
    )
    new_password = re.search(r'<code id="shown-password">([^<]+)</code>', regenerated.text)
    assert new_password and new_password.group(1) != password.group(1)
    assert 'value="brevo-hook"' in (await client.get(PAGE)).text

    await client.post(f"{PAGE}/create", data={"csrf_token": csrf, "provider": "sendgrid"})
    bad = await client.post(
        f"{PAGE}/sendgrid/verification", data={"csrf_token": csrf, "public_key": "nonsense"}
    )
    assert bad.status_code == 422
    assert 'id="sendgrid-public_key-error"' in bad.text
    assert "is not a base64 DER public key" in bad.text
    der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key = base64.b64encode(der).decode()
    saved = await client.post(
        f"{PAGE}/sendgrid/verification", data={"csrf_token": csrf, "public_key": key}
    )
    assert saved.status_code == 303
    page = await client.get(PAGE + "?done=saved")
    assert "Verification data saved." in page.text and html.escape(key) in page.text
    assert "send a test event from its console" in page.text

    gone = await client.post(f"{PAGE}/brevo/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303
    final = await client.get(PAGE + "?done=deleted")
    assert 'data-provider="brevo"' not in final.text and 'data-provider="sendgrid"' in final.text


async def test_forms_need_the_csrf_token_and_the_admin(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.EVENT_MANAGER)
    page = await client.get(PAGE)
    assert page.status_code == 403 and "set up by admins" in page.text
    refused = await client.post(f"{PAGE}/create", data={"csrf_token": "x", "provider": "ses"})
    assert refused.status_code == 403
