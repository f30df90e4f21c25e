"""A relay webhook's URL token never reaches the log (uvicorn's access log keeps the path)."""

from __future__ import annotations

from visitmail.logs import REDACTED, scrub_text


def test_the_relay_webhook_token_is_masked_in_access_logs() -> None:
    token = "Zm9vYmFyYmF6cXV4LXNlY3JldC10b2tlbi0xMjM0NTY3ODk"
    line = f'10.0.0.1:4000 - "POST /api/v1/relay-webhooks/mailgun/{token} HTTP/1.1" 200'
    shown = scrub_text(line)
    assert token not in shown
    assert f"/api/v1/relay-webhooks/mailgun/{REDACTED} HTTP/1.1" in shown
    assert scrub_text("GET /api/v1/relay-webhook-endpoints/mailgun") == (
        "GET /api/v1/relay-webhook-endpoints/mailgun"
    )
