"""Issue 10, item 15: a bounded schemathesis run over the whole OpenAPI schema.

Every operation of ``/api/openapi.json`` gets ``MAX_EXAMPLES`` generated requests that fit
the schema and as many that do not (derandomized: the same requests on every run), sent as
the admin of a fresh organization that already has an event, a report, SMTP settings, a
second user and token, an upload, a template, a mapping revision, a suppressed address,
a webhook secret and an unsubscribe link, so about half of the positive cases hit real
ids. Destructive calls are fine: the organization is thrown away.

Asserted for every response: no 5xx; the status code is documented for the operation;
the content type and the body match the schema; a 4xx body is the project's error shape
``{"error": {"code", "message", "field"}}``.

Nothing is excluded. The connection test and auto-detect run for real, but against a
loopback SMTP server only: the product's SSRF guard lets public addresses through (SMTP
servers are public), so under fuzzing a generated public IP literal would be dialled. The
app's diagnoser is the real tester with the guard narrowed to the test server's port and a
resolver that answers every name with 127.0.0.1 (no DNS traffic).

Found and fixed (regression tests in test_api_fuzz_findings.py): bodies FastAPI could not
parse (bytes that are not UTF-8, broken multipart framing, JSON nested too deeply) got an
undocumented 400 with ``field`` null, now a 422 naming ``body``; the body-size guard's 413
and the text guard's 422 were documented nowhere; the mapping's 422 schema required
``details``, which a malformed body's answer lacks; a mapping problem at the top of the
document (not an object, the empty key) had ``field`` null; the unsubscribe page's HTML
404 was documented as the JSON error shape. Probing by hand beside it: a surrogate spelled
in raw UTF-8 bytes (``ED A0 80``) slipped past the surrogate guard into a stored report,
and that report's reply and every later list answered 500. No generated request got a 5xx.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any

import httpx

from tests.integration.web.test_events_api import PDF
from tests.integration.web.test_mapping_api import regional_mapping
from tests.integration.web.test_reports_api import capture, live_event
from tests.support.api_fuzz import LoopbackOnlyPolicy, bridge, fuzz, loopback_resolver
from tests.support.orgs import OrgFixture, new_org
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.adapters.crypto.keyring import KeyRing
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.runtime import Runtime
from visitmail.web.api.follow_ups import unsubscribe_tokens
from visitmail.web.app import create_app

# Per operation and generation mode. VISITMAIL_FUZZ_EXAMPLES raises it for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("VISITMAIL_FUZZ_EXAMPLES", "12"))


async def seed_objects(
    client: httpx.AsyncClient, org: OrgFixture, server: SmtpServer, keyring: KeyRing
) -> dict[str, str]:
    """Real objects of every kind a path names; returns path-parameter name -> id.

    The admin's own user and token are not offered: demoting or revoking them would turn
    the rest of the run into 401/403s."""
    h = org.headers
    event = await live_event(client, org)
    report = await capture(client, h, event["id"])
    smtp = await client.put(
        "/api/v1/smtp-settings",
        headers=h,
        json={
            "host": server.host,
            "port": server.port,
            "security": "none",
            "sender_email": "sales@example.com",
            "sender_name": "Acme Sales",
        },
    )
    assert smtp.status_code == 200, smtp.text
    member = await client.post(
        "/api/v1/users",
        headers=h,
        json={
            "email": "fuzz-member@example.com",
            "role": "reporter",
            "display_name": "Fuzz Member",
        },
    )
    assert member.status_code == 201, member.text
    token = await client.post("/api/v1/tokens", headers=h, json={"name": "fuzz"})
    assert token.status_code == 201, token.text
    media = await client.post(
        f"/api/v1/events/{event['id']}/media", headers=h, files={"file": ("a.pdf", PDF)}
    )
    assert media.status_code == 201, media.text
    template = await client.put(
        f"/api/v1/events/{event['id']}/templates/de",
        headers=h,
        json={"subject": "Danke, {{ lead.last_name }}", "text": "{{ salutation }},\ndanke."},
    )
    assert template.status_code == 200, template.text
    suppressed = await client.post(
        "/api/v1/suppressions", headers=h, json={"address": "bounced@example.com"}
    )
    assert suppressed.status_code == 201, suppressed.text
    secret = await client.put("/api/v1/webhook-secrets/crm", headers=h, json={})
    assert secret.status_code == 200, secret.text
    mapping = await client.put("/api/v1/notification-mapping", headers=h, json=regional_mapping())
    assert mapping.status_code == 200, mapping.text
    exported = await client.post(f"/api/v1/reports/{report['id']}/export", headers=h)
    assert exported.status_code == 200, exported.text  # queues a notification: a message id
    # Two DKIM keys: the first signs (and cannot be deleted), the second is offered.
    for selector in ("fuzz1", "fuzz2"):
        made = await client.post(
            "/api/v1/smtp-settings/dkim", headers=h, json={"selector": selector}
        )
        assert made.status_code == 201, made.text
    mailbox = await client.put(
        "/api/v1/bounce-mailbox",
        headers=h,
        json={
            "host": server.host,
            "port": server.port,
            "username": "b@example.com",
            "password": "pw",
        },
    )
    assert mailbox.status_code == 200, mailbox.text
    relay = await client.post("/api/v1/relay-webhook-endpoints/mailgun", headers=h)
    assert relay.status_code == 201, relay.text
    revisions = await client.get("/api/v1/notification-mapping/revisions", headers=h)
    ids = {
        "provider": "mailgun",
        "endpoint_token": relay.json()["url"].rstrip("/").rsplit("/", 1)[1],
        "key_id": made.json()["id"],
        "event_id": event["id"],
        "report_id": report["id"],
        "user_id": member.json()["id"],
        "token_id": token.json()["id"],
        "media_id": media.json()["id"],
        "language": "de",
        "name": "crm",
        "address": "bounced@example.com",
        "token": unsubscribe_tokens(keyring).seal(org.organization.id, "anna@example.com"),
    }
    items = revisions.json()
    items = items["items"] if isinstance(items, dict) else items
    if items:
        ids["revision_id"] = str(items[0]["id"])
    messages = (await client.get("/api/v1/messages", headers=h)).json()
    messages = messages["items"] if isinstance(messages, dict) else messages
    if messages:
        ids["message_id"] = messages[0]["id"]
    return ids


async def test_no_generated_request_gets_a_server_error(runtime: Runtime) -> None:
    server = await start_smtp_server()
    app = create_app(runtime)
    app.state.diagnoser = SmtpConnectionTester(
        LoopbackOnlyPolicy(loopback_port=server.port),
        resolver=loopback_resolver,
        autodetect_timeout=2.0,
    )
    org = await new_org(runtime, name="Fuzz")
    transport = httpx.ASGITransport(
        app=app, client=(f"10.15.{secrets.randbelow(250)}.{secrets.randbelow(250)}", 4000)
    )
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            real_ids = await seed_objects(c, org, server, runtime.keyring)
            spec: dict[str, Any] = (await c.get("/api/openapi.json")).json()
            started = time.monotonic()
            report = await asyncio.to_thread(
                fuzz,
                spec,
                bridge(c, asyncio.get_running_loop()),
                token=org.token,
                real_ids=real_ids,
                max_examples=MAX_EXAMPLES,
            )
            elapsed = time.monotonic() - started
    finally:
        await server.close()

    print(  # the figures docs/reliability.md quotes (pytest -s)
        f"\nfuzz: {report.requests} requests in {elapsed:.1f}s, "
        f"{report.unsendable} unsendable, statuses {dict(sorted(report.statuses.items()))}"
    )
    for key, counts in sorted(report.per_operation.items()):
        print(f"  {key}: {dict(sorted(counts.items()))}")
    findings = report.unique_findings()
    assert not findings, "\n".join(str(f) for f in findings)
    assert not any(status >= 500 for status in report.statuses)
    # The run really covered the API: every operation was called, and with the seeded
    # objects most answered a success at least once (not a wall of 401s or 404s).
    operations = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    assert set(report.per_operation) == operations
    succeeded = {
        op for op, counts in report.per_operation.items() if any(200 <= s < 300 for s in counts)
    }
    # Three in four: some operations cannot succeed with generated bodies at all (a
    # password change needs the current password; an OAuth callback needs a code the
    # provider issued), and the derandomized draws move with every change to the schema.
    assert len(succeeded) >= 0.75 * len(operations), sorted(operations - succeeded)
