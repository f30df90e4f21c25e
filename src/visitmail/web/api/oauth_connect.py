"""The browser sign-in for headless admins: ``POST /api/v1/smtp-settings/oauth/authorize``
returns the provider's URL and the ``state``; the admin opens the URL, signs in with the
mailbox, and sends the ``code`` (and ``state``) the provider appended to the redirect URI
to ``POST /api/v1/smtp-settings/oauth/callback``. Admin only; the state is bound to the
API token's user, expires after 10 minutes and is used once. Tokens are stored write-only
like ``PUT /api/v1/smtp-settings/oauth/refresh-token``.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from visitmail.domain.oauth import OAuthProvider
from visitmail.domain.oauth_connect import (
    MAX_CODE_LENGTH,
    MAX_ERROR_LENGTH,
    MAX_STATE_LENGTH,
    ConnectFailed,
)
from visitmail.oauth_wiring import connect_config
from visitmail.services import oauth_connect
from visitmail.web.api.schemas import ErrorResponse, Strict
from visitmail.web.api.smtp_schemas import SmtpSettingsOut
from visitmail.web.connect_wiring import clock_of, consent_client_of
from visitmail.web.deps import AdminDep, RuntimeDep, UowDep
from visitmail.web.smtp_wiring import SecretBoxDep

ERRORS: dict[int | str, dict[str, object]] = {
    400: {
        "model": ErrorResponse,
        "description": "code `oauth_connect_failed`: the state is unknown, used or expired, "
        "the provider refused (its words and the fix in `message`), or the settings are "
        "not a delegated OAuth2 provider",
    },
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    409: {"model": ErrorResponse, "description": "code `secret_unreadable`: master key missing"},
    422: {"model": ErrorResponse},
}

router = APIRouter(prefix="/api/v1/smtp-settings/oauth", tags=["smtp settings"], responses=ERRORS)


class AuthorizeOut(BaseModel):
    authorization_url: str = Field(description="open this in a browser and sign in as the mailbox")
    state: str = Field(description="send it back with the code; valid once, for 10 minutes")
    redirect_uri: str = Field(
        description="where the provider sends the browser (register it in the app); the code "
        "and state are in its query string"
    )
    expires_at: datetime


class CallbackIn(Strict):
    state: str = Field(min_length=1, max_length=MAX_STATE_LENGTH)
    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CODE_LENGTH,
        description="the `code` from the redirect (write-only)",
        json_schema_extra={"writeOnly": True},
    )
    error: str | None = Field(
        default=None, max_length=100, description="the provider's `error`, if it sent one"
    )
    error_description: str | None = Field(default=None, max_length=MAX_ERROR_LENGTH)


class ConnectedOut(BaseModel):
    connected: bool = Field(description="the refresh token is stored")
    provider: OAuthProvider
    mailbox: str
    missing_scopes: list[str] = Field(
        description="SMTP scopes the provider did not grant (the connection test's scope step "
        "fails then)"
    )
    settings: SmtpSettingsOut


def with_fix(e: ConnectFailed) -> ConnectFailed:
    """The JSON error has one message: the fix goes into it."""
    return ConnectFailed(f"{e.message} Fix: {e.fix}", fix=e.fix, field=e.field)


@router.post(
    "/authorize",
    summary="Start the browser sign-in of the OAuth2 mailbox (admin; delegated providers)",
    description="Authorization-code flow with PKCE (S256) for the saved settings "
    "(`microsoft365_delegated` or `google_delegated`). The PKCE verifier stays on the "
    "server. The redirect URI is `VISITMAIL_PUBLIC_URL` + `/settings/smtp/oauth/callback`.",
)
async def authorize(
    request: Request, principal: AdminDep, uow: UowDep, box: SecretBoxDep, runtime: RuntimeDep
) -> AuthorizeOut:
    try:
        started = await oauth_connect.start_connect(
            uow,
            box,
            consent_client_of(request, runtime),
            principal,
            connect_config(runtime, str(request.base_url)),
            session_secret=None,
            clock=clock_of(request),
        )
    except ConnectFailed as e:
        raise with_fix(e) from None
    return AuthorizeOut(
        authorization_url=started.authorization_url,
        state=started.state,
        redirect_uri=started.redirect_uri,
        expires_at=started.expires_at,
    )


@router.post(
    "/callback",
    summary="Finish the sign-in with the provider's code and state (admin)",
    description="Exchanges the code (with the PKCE verifier and the client secret) and "
    "stores the refresh token and an access token, write-only. Send the provider's `error` "
    "instead of a code to have it explained. Nothing is stored on failure.",
)
async def callback(
    request: Request, body: CallbackIn, principal: AdminDep, box: SecretBoxDep, runtime: RuntimeDep
) -> ConnectedOut:
    try:
        done = await oauth_connect.complete_connect(
            runtime.uow,
            box,
            consent_client_of(request, runtime),
            principal,
            connect_config(runtime, str(request.base_url)),
            state=body.state,
            code=body.code,
            error=body.error,
            error_description=body.error_description,
            session_secret=None,
            clock=clock_of(request),
        )
    except ConnectFailed as e:
        raise with_fix(e) from None
    return ConnectedOut(
        connected=True,
        provider=done.provider,
        mailbox=done.mailbox,
        missing_scopes=list(done.missing_scopes),
        settings=SmtpSettingsOut.of(done.view),
    )
