"""Connect a delegated mailbox (Microsoft 365, Google) by signing in in the browser: the
authorization-code flow with PKCE. Admin only.

:func:`start_connect` stores a :class:`~visitmail.domain.oauth_connect.PendingConnect`
(state hash, sealed PKCE verifier, user and session, expiry 10 minutes) and returns the
provider's authorization URL. :func:`complete_connect` takes the callback's ``code`` and
``state`` (or the provider's ``error``):

1. one short transaction checks the state (known, unused, unexpired, same user and login
   session; :func:`~visitmail.domain.oauth_connect.check_state`) and marks it used, so a
   second callback with the same state fails even if the first is still running;
2. the code is exchanged at the token endpoint with the verifier and the client secret,
   with no transaction open;
3. a second transaction stores the refresh token and the access token (sealed, like every
   OAuth secret), drops nothing else, schedules a probe of a paused queue and writes one
   audit entry (field names only).

Nothing is stored when any step fails; :class:`~visitmail.domain.oauth_connect.
ConnectFailed` says why and what to do. No code, state, verifier or token is logged or put
in an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from uuid import UUID

from visitmail.domain.identity import Principal
from visitmail.domain.oauth import (
    OAuthEndpoints,
    OAuthProvider,
    OAuthSettings,
    missing_scopes,
    token_url,
)
from visitmail.domain.oauth_connect import (
    CONNECT_TTL,
    MAX_CODE_LENGTH,
    MAX_ERROR_LENGTH,
    ConnectFailed,
    ConnectStart,
    PendingConnect,
    authorization_endpoint,
    check_connectable,
    check_state,
    explain_callback_error,
    extra_parameters,
    from_token_failure,
    no_refresh_token,
    scopes_to_request,
    session_hash,
    state_hash,
)
from visitmail.domain.oauth_tokens import OAuthCredentials, OAuthTokenFailed, TokenGrant
from visitmail.domain.roles import Role
from visitmail.domain.smtp_settings import AuthMethod
from visitmail.services.clock import Clock, utcnow
from visitmail.services.identity import require_role
from visitmail.services.oauth_tokens import OAuthUnitOfWork
from visitmail.services.ports import (
    SecretSealer,
    SmtpSecretField,
    StoredSmtpSettings,
    UnitOfWork,
)
from visitmail.services.smtp_config import (
    AUDIT_TARGET,
    SmtpSettingsView,
    settings_warnings,
)

ACTION_CONNECT = "smtp_settings.oauth_connect"
#: The PKCE verifier's label in the sealed value's associated data.
VERIFIER_FIELD = "smtp.oauth.pkce_verifier"
REFRESH = SmtpSecretField.OAUTH_REFRESH_TOKEN
ACCESS = SmtpSecretField.OAUTH_ACCESS_TOKEN


class ConsentClient(Protocol):
    """Builds the authorization URL and exchanges the code (``adapters/oauth``)."""

    def new_state(self) -> str: ...

    def new_code_verifier(self) -> str: ...

    def authorization_url(
        self,
        endpoint: str,
        *,
        client_id: str,
        redirect_uri: str,
        scopes: Sequence[str],
        state: str,
        code_verifier: str,
        login_hint: str | None,
        extra: dict[str, str],
    ) -> str: ...

    async def exchange_code(
        self,
        settings: OAuthSettings,
        credentials: OAuthCredentials,
        *,
        url: str,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        scopes: Sequence[str],
    ) -> TokenGrant:
        """Raises :class:`OAuthTokenFailed` when refused or unreachable."""
        ...


class PendingConnectRepository(Protocol):
    async def get(self, organization_id: UUID, *, lock: bool = False) -> PendingConnect | None:
        """``lock``: hold the row until the transaction ends (one callback at a time)."""
        ...

    async def put(self, organization_id: UUID, pending: PendingConnect) -> bool:
        """Store ``pending``, replacing the previous one; ``False`` without an OAuth row."""
        ...


class ConnectUnitOfWork(UnitOfWork, OAuthUnitOfWork, Protocol):
    oauth_connects: PendingConnectRepository


@dataclass(frozen=True, slots=True)
class ConnectConfig:
    """The operator's endpoints and the redirect URI (``VISITMAIL_PUBLIC_URL`` + the
    callback path) registered at the provider."""

    endpoints: OAuthEndpoints
    google_authorization_url: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class Connected:
    """A completed sign-in: the settings view and what the page says."""

    view: SmtpSettingsView
    provider: OAuthProvider
    mailbox: str
    missing_scopes: tuple[str, ...]


def _oauth_of(stored: StoredSmtpSettings | None) -> OAuthSettings:
    if stored is None or stored.settings.auth_method is not AuthMethod.OAUTH2:
        return check_connectable(None)
    return check_connectable(stored.settings.oauth)


async def start_connect(
    uow: ConnectUnitOfWork,
    box: SecretSealer,
    client: ConsentClient,
    principal: Principal,
    config: ConnectConfig,
    *,
    session_secret: str | None,
    clock: Clock = utcnow,
    expected_provider: str | None = None,
) -> ConnectStart:
    """Store a new pending sign-in for the saved settings and return where the browser
    goes. ``session_secret``: the UI's login session (``None`` through the API).
    ``expected_provider``: the provider the caller believes is saved; another one (unsaved
    changes on the page) is refused, naming ``oauth.provider``."""
    require_role(principal, Role.ADMIN)
    org = principal.organization_id
    stored = await uow.smtp_settings.get(org, for_update=True)
    oauth = _oauth_of(stored)
    if expected_provider is not None and expected_provider != oauth.provider.value:
        raise ConnectFailed(
            f"The saved provider is {oauth.provider.value}, not {expected_provider[:40]}.",
            fix="Save the settings first, then click Connect.",
            field="oauth.provider",
        )
    assert stored is not None
    assert stored.settings.username is not None  # validated at save
    assert oauth.client_id is not None
    mailbox = stored.settings.username
    state = client.new_state()
    verifier = client.new_code_verifier()
    now = clock()
    pending = PendingConnect(
        state_hash=state_hash(state),
        verifier_sealed=box.seal(verifier, organization_id=org, field=VERIFIER_FIELD),
        user_id=principal.user.id,
        session_hash=session_hash(session_secret) if session_secret else None,
        provider=oauth.provider,
        client_id=oauth.client_id,
        tenant_id=oauth.tenant_id,
        mailbox=mailbox,
        redirect_uri=config.redirect_uri,
        started_at=now,
        expires_at=now + CONNECT_TTL,
    )
    if not await uow.oauth_connects.put(org, pending):  # no OAuth row: not oauth2 after all
        raise ConnectFailed(
            "The OAuth settings are not saved yet.",
            fix="Save the settings with OAuth2, then click Connect.",
            field="auth_method",
        )
    await uow.commit()
    url = client.authorization_url(
        authorization_endpoint(
            oauth,
            microsoft_authority=config.endpoints.microsoft_authority,
            google_authorization_url=config.google_authorization_url,
        ),
        client_id=oauth.client_id,
        redirect_uri=config.redirect_uri,
        scopes=scopes_to_request(oauth),
        state=state,
        code_verifier=verifier,
        login_hint=mailbox,
        extra=extra_parameters(oauth),
    )
    return ConnectStart(
        authorization_url=url,
        state=state,
        redirect_uri=config.redirect_uri,
        expires_at=pending.expires_at,
    )


def _unchanged(pending: PendingConnect, stored: StoredSmtpSettings | None) -> OAuthSettings:
    oauth = _oauth_of(stored)
    assert stored is not None
    if not pending.matches(oauth, stored.settings.username):
        raise ConnectFailed(
            "The OAuth settings changed after Connect was clicked (provider, tenant, client "
            "id or mailbox).",
            fix="Click Connect again for the settings as they are now.",
            field=None,
        )
    return oauth


async def complete_connect(
    uow_factory: Callable[[], ConnectUnitOfWork],
    box: SecretSealer,
    client: ConsentClient,
    principal: Principal,
    config: ConnectConfig,
    *,
    state: str,
    code: str | None,
    error: str | None = None,
    error_description: str | None = None,
    session_secret: str | None,
    clock: Clock = utcnow,
) -> Connected:
    """Finish the sign-in ``state`` belongs to (see the module docstring)."""
    require_role(principal, Role.ADMIN)
    org = principal.organization_id
    async with uow_factory() as uow:
        pending = check_state(
            await uow.oauth_connects.get(org, lock=True),
            state,
            user_id=principal.user.id,
            session=session_secret,
            now=clock(),
        )
        await uow.oauth_connects.put(org, pending.used_now())
        stored = await uow.smtp_settings.get(org)
        await uow.commit()
    if error:
        raise explain_callback_error(
            pending.provider, error[:100], (error_description or "")[:MAX_ERROR_LENGTH]
        )
    if not code or len(code) > MAX_CODE_LENGTH:
        raise ConnectFailed(
            "The provider sent no usable authorization code.",
            fix="Click Connect again and finish the sign-in.",
            field="code",
        )
    oauth = _unchanged(pending, stored)
    assert stored is not None
    secret = stored.sealed.get(SmtpSecretField.OAUTH_CLIENT_SECRET)
    credentials = OAuthCredentials(
        client_secret=box.open(
            secret, organization_id=org, field=SmtpSecretField.OAUTH_CLIENT_SECRET.sealed_as
        )
        if secret
        else None
    )
    verifier = box.open(pending.verifier_sealed, organization_id=org, field=VERIFIER_FIELD)
    scopes = scopes_to_request(oauth)
    try:
        grant = await client.exchange_code(
            oauth,
            credentials,
            url=token_url(oauth, config.endpoints),
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=verifier,
            scopes=scopes,
        )
    except OAuthTokenFailed as e:
        raise from_token_failure(e) from None
    if not grant.refresh_token:
        raise no_refresh_token(pending.provider)
    return await _store(uow_factory, box, principal, pending, grant, clock=clock)


async def _store(
    uow_factory: Callable[[], ConnectUnitOfWork],
    box: SecretSealer,
    principal: Principal,
    pending: PendingConnect,
    grant: TokenGrant,
    *,
    clock: Clock,
) -> Connected:
    org = principal.organization_id
    assert grant.refresh_token is not None
    async with uow_factory() as uow:
        stored = await uow.smtp_settings.get(org, for_update=True)
        oauth = _unchanged(pending, stored)  # not changed while the browser was away
        assert stored is not None
        now = clock()
        await uow.smtp_settings.save(
            org,
            stored.settings,
            sealed={
                REFRESH: box.seal(
                    grant.refresh_token, organization_id=org, field=REFRESH.sealed_as
                ),
                ACCESS: None,
            },
            actor_id=principal.user.id,
            now=now,
        )
        await uow.oauth_tokens.save_tokens(
            org,
            access_sealed=box.seal(grant.access_token, organization_id=org, field=ACCESS.sealed_as),
            expires_at=now + timedelta(seconds=grant.expires_in),
            scopes=grant.scopes,
            refresh_sealed=None,
            now=now,
        )
        await uow.oauth_connects.put(org, pending.used_now())  # the save rewrote the document
        await uow.health.schedule_probe(org, now)
        await uow.audit.record(
            org,
            actor_id=principal.user.id,
            action=ACTION_CONNECT,
            target=AUDIT_TARGET,
            fields=[REFRESH.value],
            now=now,
        )
        await uow.commit()
    present = frozenset(stored.sealed) | {REFRESH, ACCESS}
    missing = tuple(missing_scopes(oauth, grant.scopes)) if grant.scopes is not None else ()
    return Connected(
        view=SmtpSettingsView(
            settings=stored.settings,
            secrets_set=present,
            warnings=settings_warnings(stored.settings, present),
            updated_at=now,
            updated_by=principal.user.id,
        ),
        provider=pending.provider,
        mailbox=pending.mailbox,
        missing_scopes=missing,
    )
