"""Unit tests for domain/oauth_connect.py: the state check (unknown, used, expired at the
boundary, other user, other session, API-bound), the sign-in endpoints and parameters, the
provider's callback errors in plain words, and no secret in a repr."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from visitmail.domain.oauth import OAuthProvider, OAuthSettings
from visitmail.domain.oauth_connect import (
    CONNECT_TTL,
    ConnectFailed,
    PendingConnect,
    authorization_endpoint,
    check_connectable,
    check_state,
    explain_callback_error,
    extra_parameters,
    no_refresh_token,
    session_hash,
    state_hash,
)

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
USER = uuid.uuid4()
STATE = "s3cr3t-state-value-Abc"
SESSION = "session-cookie-value-Xyz"
MS = OAuthSettings(OAuthProvider.MICROSOFT365_DELEGATED, client_id="c1", tenant_id="t.example")
GOOGLE = OAuthSettings(OAuthProvider.GOOGLE_DELEGATED, client_id="g1")


def pending(**changes: object) -> PendingConnect:
    values: dict[str, object] = dict(
        state_hash=state_hash(STATE),
        verifier_sealed="v1:k:sealed-verifier",
        user_id=USER,
        session_hash=session_hash(SESSION),
        provider=OAuthProvider.MICROSOFT365_DELEGATED,
        client_id="c1",
        tenant_id="t.example",
        mailbox="sales@example.com",
        redirect_uri="https://vm.example.com/settings/smtp/oauth/callback",
        started_at=NOW,
        expires_at=NOW + CONNECT_TTL,
    )
    values.update(changes)
    return PendingConnect(**values)  # type: ignore[arg-type]


def test_the_right_state_in_the_same_session_passes() -> None:
    p = pending()
    assert check_state(p, STATE, user_id=USER, session=SESSION, now=NOW) is p


@pytest.mark.parametrize("given", ["", STATE + "x", STATE[:-1], "s" * 201])
def test_an_unknown_or_altered_state_is_refused(given: str) -> None:
    with pytest.raises(ConnectFailed, match="does not match a Connect started here") as e:
        check_state(pending(), given, user_id=USER, session=SESSION, now=NOW)
    assert e.value.field == "state"
    assert "Start again with Connect" in e.value.fix


def test_no_pending_sign_in_is_refused() -> None:
    with pytest.raises(ConnectFailed, match="does not match"):
        check_state(None, STATE, user_id=USER, session=SESSION, now=NOW)


def test_a_used_state_is_refused() -> None:
    with pytest.raises(ConnectFailed, match="already used"):
        check_state(pending().used_now(), STATE, user_id=USER, session=SESSION, now=NOW)


def test_the_state_expires_after_ten_minutes_exactly() -> None:
    p = pending()
    just_before = NOW + CONNECT_TTL - timedelta(microseconds=1)
    assert check_state(p, STATE, user_id=USER, session=SESSION, now=just_before) is p
    with pytest.raises(ConnectFailed, match="within 10 minutes"):
        check_state(p, STATE, user_id=USER, session=SESSION, now=NOW + CONNECT_TTL)


def test_another_user_or_session_is_refused() -> None:
    with pytest.raises(ConnectFailed, match="another user or in another login session"):
        check_state(pending(), STATE, user_id=uuid.uuid4(), session=SESSION, now=NOW)
    with pytest.raises(ConnectFailed, match="another user or in another login session"):
        check_state(pending(), STATE, user_id=USER, session="other-session", now=NOW)
    with pytest.raises(ConnectFailed, match="another user or in another login session"):
        check_state(pending(), STATE, user_id=USER, session=None, now=NOW)


def test_a_state_started_through_the_api_is_bound_to_the_user_only() -> None:
    p = pending(session_hash=None)
    assert check_state(p, STATE, user_id=USER, session=None, now=NOW) is p
    with pytest.raises(ConnectFailed):
        check_state(p, STATE, user_id=uuid.uuid4(), session=None, now=NOW)


def test_only_delegated_oauth_settings_connect() -> None:
    with pytest.raises(ConnectFailed, match="not set to OAuth2") as e:
        check_connectable(None)
    assert e.value.field == "auth_method"
    app = OAuthSettings(OAuthProvider.MICROSOFT365_APP, client_id="c", tenant_id="t")
    with pytest.raises(ConnectFailed, match="does not sign in with a mailbox") as e:
        check_connectable(app)
    assert e.value.field == "oauth.provider"
    assert check_connectable(GOOGLE) is GOOGLE


def test_sign_in_endpoints_and_parameters() -> None:
    assert (
        authorization_endpoint(
            MS, microsoft_authority="http://127.0.0.1:9/", google_authorization_url="x"
        )
        == "http://127.0.0.1:9/t.example/oauth2/v2.0/authorize"
    )
    assert (
        authorization_endpoint(GOOGLE, microsoft_authority="x", google_authorization_url="g") == "g"
    )
    assert extra_parameters(GOOGLE) == {"access_type": "offline", "prompt": "consent"}
    assert extra_parameters(MS) == {}


@pytest.mark.parametrize(
    ("error", "description", "said", "fix"),
    [
        ("access_denied", None, "consent was refused", "Allow"),
        (
            "access_denied",
            "AADSTS65004: User declined to consent to access the app.",
            "consent was refused",
            "admin consent",
        ),
        (
            "invalid_request",
            "AADSTS50011: The redirect URI ... does not match",
            "redirect URI",
            "Authentication",
        ),
        (
            "unauthorized_client",
            "AADSTS700016: Application not found",
            "not found",
            "client (application) id",
        ),
        (
            "invalid_request",
            "AADSTS50020: User account from identity provider",
            "does not belong to this tenant",
            "mailbox itself",
        ),
        (
            "consent_required",
            "AADSTS65001: The user or administrator has not consented",
            "needs consent",
            "admin consent",
        ),
        ("invalid_scope", "bad scope", "refused the requested scopes", "SMTP.Send"),
        ("server_error", None, "did not complete", "Connect again"),
    ],
)
def test_callback_errors_are_explained_with_their_fix(
    error: str, description: str | None, said: str, fix: str
) -> None:
    provider = (
        OAuthProvider.GOOGLE_DELEGATED
        if description is None and error == "access_denied"
        else OAuthProvider.MICROSOFT365_DELEGATED
    )
    failed = explain_callback_error(provider, error, description)
    assert said in failed.message
    assert fix in failed.fix
    assert error in failed.message


def test_no_refresh_token_says_what_to_do_per_provider() -> None:
    assert "myaccount.google.com" in no_refresh_token(OAuthProvider.GOOGLE_DELEGATED).fix
    assert "offline_access" in no_refresh_token(OAuthProvider.MICROSOFT365_DELEGATED).fix


def test_reprs_hold_no_state_hash_or_sealed_verifier() -> None:
    shown = repr(pending()) + str(pending())
    assert state_hash(STATE) not in shown
    assert "sealed-verifier" not in shown
    assert session_hash(SESSION) not in shown
