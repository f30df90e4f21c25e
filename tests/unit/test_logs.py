from __future__ import annotations

import logging

import pytest
import structlog

from visitmail.logs import REDACTED, configure_logging, get_logger, redact_secrets, scrub_text


def test_secret_keys_are_redacted_and_tokens_masked() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "login with vm_0123abcd_SECRETSECRETSECRET",
            "password": "hunter2hunter2",
            "smtp_password": "p4ss",
            "headers": {"Authorization": "Bearer abc.def", "accept": "json"},
            "org": "acme",
        },
    )
    assert event["password"] == REDACTED
    assert event["smtp_password"] == REDACTED
    assert event["headers"]["Authorization"] == REDACTED
    assert event["headers"]["accept"] == "json"
    assert "SECRETSECRET" not in event["event"]
    assert event["org"] == "acme"


def test_bearer_credentials_in_text_are_masked() -> None:
    assert scrub_text("Authorization: Bearer abc123") == f"Authorization: Bearer {REDACTED}"


def test_the_oauth_callback_query_is_masked_in_access_logs() -> None:
    line = (
        '127.0.0.1:5 - "GET /settings/smtp/oauth/callback?code=c0de-Xyz&state=st4te HTTP/1.1" 303'
    )
    shown = scrub_text(line)
    assert "c0de-Xyz" not in shown and "st4te" not in shown
    assert f"/settings/smtp/oauth/callback?{REDACTED} HTTP/1.1" in shown


def test_stdlib_and_structlog_output_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        get_logger("t").info("sent", password="hunter2hunter2", org="acme")
        logging.getLogger("uvicorn.access").info("GET /x?t=vm_0123abcd_SECRETSECRETSECRET")
        err = capsys.readouterr().err
        assert "hunter2" not in err
        assert "SECRETSECRET" not in err
        assert '"org": "acme"' in err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
