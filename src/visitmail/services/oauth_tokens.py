"""Access tokens for SMTP XOAUTH2: cached, refreshed one at a time, rotation saved.

Contract of :meth:`TokenService.access_token`:

* The cached access token is used while it has at least
  :data:`~visitmail.domain.oauth_tokens.MIN_TOKEN_LIFETIME` (5 minutes) left, so a connection
  never starts with a token about to expire. The caller asks once per physical connection.
* Otherwise **one refresh at a time per mailbox, across every worker**: the OAuth row is
  locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's single writer connection
  serializes writer transactions) and *re-read after the lock is held*, so a worker that
  waited uses the token the first one fetched instead of spending the refresh token again.
  Inside one process an :class:`asyncio.Lock` per organization keeps waiters off the
  database. The lock is held across the HTTP request (bounded by the client's timeout):
  that is the point, a rotating refresh token must not be used twice.
* A refresh token the endpoint rotates is sealed and saved **in the same transaction** as
  the new access token, on every refresh.
* ``rejected``: the token a server just refused (535). A cached token equal to it is not
  used; a different one (another worker refreshed meanwhile) is.

Raises :class:`~visitmail.domain.oauth_tokens.OAuthTokenFailed` with a fix in plain words (the
endpoint's refusal, a mailbox not connected yet) and lets ``SecretUnreadable`` through.
Nothing here logs or raises a secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from visitmail.domain.oauth import OAuthEndpoints, OAuthSettings, token_url
from visitmail.domain.oauth_tokens import (
    AccessToken,
    OAuthCredentials,
    OAuthTokenFailed,
    TokenGrant,
)
from visitmail.services.clock import Clock, utcnow
from visitmail.services.ports import (
    OAuthTokenRepository,
    SecretSealer,
    SmtpSecretField,
    StoredOAuth,
)

ACCESS = SmtpSecretField.OAUTH_ACCESS_TOKEN
REFRESH = SmtpSecretField.OAUTH_REFRESH_TOKEN


class TokenEndpointClient(Protocol):
    """Talks to a token endpoint (``adapters/oauth``)."""

    async def fetch(
        self, settings: OAuthSettings, credentials: OAuthCredentials, *, mailbox: str, url: str
    ) -> TokenGrant:
        """One token request for ``settings``' grant. Raises :class:`OAuthTokenFailed`
        (refused, unreachable, or an address the network policy forbids)."""
        ...


class AccessTokenSource(Protocol):
    """What the SMTP transport asks for a token (:class:`TokenService` is one)."""

    async def access_token(
        self, organization_id: UUID, mailbox: str, *, rejected: str | None = None
    ) -> AccessToken: ...


class OAuthUnitOfWork(Protocol):
    oauth_tokens: OAuthTokenRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


def credentials_of(
    box: SecretSealer, organization_id: UUID, sealed: dict[SmtpSecretField, str]
) -> OAuthCredentials:
    def opened(field: SmtpSecretField) -> str | None:
        token = sealed.get(field)
        if token is None:
            return None
        return box.open(token, organization_id=organization_id, field=field.sealed_as)

    return OAuthCredentials(
        client_secret=opened(SmtpSecretField.OAUTH_CLIENT_SECRET),
        private_key_pem=opened(SmtpSecretField.OAUTH_PRIVATE_KEY),
        service_account_key=opened(SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY),
        refresh_token=opened(REFRESH),
    )


def not_connected() -> OAuthTokenFailed:
    return OAuthTokenFailed(
        "The mailbox is not connected: no refresh token is stored.",
        fix="Connect the account: sign in with the mailbox (or store a refresh token), then "
        "run the connection test.",
        reconnect=True,
    )


async def fetch_direct(
    client: TokenEndpointClient,
    endpoints: OAuthEndpoints,
    settings: OAuthSettings,
    credentials: OAuthCredentials,
    *,
    mailbox: str,
    clock: Clock = utcnow,
) -> AccessToken:
    """A token for unsaved settings (the connection test with inline secrets): nothing is
    cached or stored."""
    if settings.uses_refresh_token and not credentials.refresh_token:
        raise not_connected()
    grant = await client.fetch(
        settings, credentials, mailbox=mailbox, url=token_url(settings, endpoints)
    )
    return AccessToken(
        token=grant.access_token,
        expires_at=clock() + timedelta(seconds=grant.expires_in),
        scopes=grant.scopes or (),
        refreshed=True,
    )


@dataclass
class _Counters:
    refreshes: int = 0  # token requests sent by this service (for tests and metrics)


class TokenService:
    """See the module docstring. One instance per process is enough (it holds the
    in-process locks); it keeps no token in memory."""

    def __init__(
        self,
        uow_factory: Callable[[], OAuthUnitOfWork],
        box: SecretSealer,
        client: TokenEndpointClient,
        endpoints: OAuthEndpoints,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._uow = uow_factory
        self._box = box
        self._client = client
        self._endpoints = endpoints
        self._clock = clock
        self._locks: dict[UUID, asyncio.Lock] = {}
        self.counters = _Counters()

    async def fetch_for_test(
        self, settings: OAuthSettings, credentials: OAuthCredentials, *, mailbox: str
    ) -> AccessToken:
        """A token for unsaved settings (see :func:`fetch_direct`)."""
        return await fetch_direct(
            self._client,
            self._endpoints,
            settings,
            credentials,
            mailbox=mailbox,
            clock=self._clock,
        )

    def _lock(self, organization_id: UUID) -> asyncio.Lock:
        lock = self._locks.get(organization_id)
        if lock is None:
            lock = self._locks[organization_id] = asyncio.Lock()
        return lock

    def _cached(
        self, organization_id: UUID, stored: StoredOAuth, rejected: str | None
    ) -> AccessToken | None:
        sealed = stored.sealed.get(ACCESS)
        expires_at = stored.access_token_expires_at
        if sealed is None or expires_at is None:
            return None
        token = AccessToken(
            token=self._box.open(sealed, organization_id=organization_id, field=ACCESS.sealed_as),
            expires_at=expires_at,
            scopes=stored.granted_scopes or (),
        )
        if not token.usable_at(self._clock()) or token.token == rejected:
            return None
        return token

    async def access_token(
        self, organization_id: UUID, mailbox: str, *, rejected: str | None = None
    ) -> AccessToken:
        """A token with at least 5 minutes left for ``organization_id``'s mailbox."""
        async with self._lock(organization_id):
            async with self._uow() as uow:
                stored = await uow.oauth_tokens.get(organization_id)
                if stored is None:
                    raise OAuthTokenFailed(
                        "OAuth2 is not set up for this organization.",
                        fix="Choose the OAuth provider in the mail server settings.",
                        reconnect=True,
                    )
                cached = self._cached(organization_id, stored, rejected)
            if cached is not None:
                return cached
            return await self._refresh(organization_id, mailbox, rejected)

    async def _refresh(
        self, organization_id: UUID, mailbox: str, rejected: str | None
    ) -> AccessToken:
        async with self._uow() as uow:
            stored = await uow.oauth_tokens.get(organization_id, lock=True)
            if stored is None:
                raise OAuthTokenFailed(
                    "OAuth2 is not set up for this organization.",
                    fix="Choose the OAuth provider in the mail server settings.",
                    reconnect=True,
                )
            # Re-read under the lock: another worker may have refreshed while we waited.
            cached = self._cached(organization_id, stored, rejected)
            if cached is not None:
                return cached
            settings = stored.settings
            credentials = credentials_of(self._box, organization_id, dict(stored.sealed))
            if settings.uses_refresh_token and not credentials.refresh_token:
                raise not_connected()
            self.counters.refreshes += 1
            grant = await self._client.fetch(
                settings,
                credentials,
                mailbox=mailbox,
                url=token_url(settings, self._endpoints),
            )
            now = self._clock()
            expires_at = now + timedelta(seconds=grant.expires_in)
            rotated = grant.refresh_token
            refresh_sealed = None
            if rotated and rotated != credentials.refresh_token:
                refresh_sealed = self._box.seal(
                    rotated, organization_id=organization_id, field=REFRESH.sealed_as
                )
            await uow.oauth_tokens.save_tokens(
                organization_id,
                access_sealed=self._box.seal(
                    grant.access_token, organization_id=organization_id, field=ACCESS.sealed_as
                ),
                expires_at=expires_at,
                scopes=grant.scopes,
                refresh_sealed=refresh_sealed,
                now=now,
            )
            await uow.commit()
        return AccessToken(
            token=grant.access_token,
            expires_at=expires_at,
            scopes=grant.scopes or (),
            refreshed=True,
        )
