"""SQL repository for organizations' SMTP settings; every query filters on the organization.

The non-secret settings are stored as a versioned JSON document (``document_of`` /
``settings_of``); each secret is a separate column holding a secret-box token. OAuth2
settings and secrets (issue 11) live in their own row (``smtp_oauth_credentials``), read
and written here together with the settings, and by :class:`SqlOAuthTokens` for the
token service's cache.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import AuditRow, SmtpOAuthRow, SmtpSettingsRow
from visitmail.domain.oauth import GenericGrant, OAuthProvider, OAuthSettings
from visitmail.domain.smtp_settings import (
    AuthMethod,
    Limits,
    ProxyKind,
    ProxySettings,
    Security,
    SmtpSettings,
    Timeouts,
    TlsOptions,
)
from visitmail.services.ports import (
    AuditEntry,
    SmtpSecretField,
    StoredOAuth,
    StoredSmtpSettings,
)

DOCUMENT_VERSION = 1
AUDIT_PREFIX = "smtp_settings."

COLUMNS: dict[SmtpSecretField, str] = {
    SmtpSecretField.PASSWORD: "password_enc",
    SmtpSecretField.PROXY_PASSWORD: "proxy_password_enc",
    SmtpSecretField.CLIENT_KEY: "client_key_enc",
}
OAUTH_COLUMNS: dict[SmtpSecretField, str] = {
    SmtpSecretField.OAUTH_CLIENT_SECRET: "client_secret_enc",
    SmtpSecretField.OAUTH_PRIVATE_KEY: "private_key_enc",
    SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY: "service_account_key_enc",
    SmtpSecretField.OAUTH_REFRESH_TOKEN: "refresh_token_enc",
    SmtpSecretField.OAUTH_ACCESS_TOKEN: "access_token_enc",
}


def oauth_document_of(oauth: OAuthSettings) -> dict[str, Any]:
    return {
        "v": DOCUMENT_VERSION,
        "provider": oauth.provider.value,
        "client_id": oauth.client_id,
        "tenant_id": oauth.tenant_id,
        "token_url": oauth.token_url,
        "scopes": list(oauth.scopes),
        "include_imap": oauth.include_imap,
        "grant": oauth.grant.value,
        "client_cert_pem": oauth.client_cert_pem,
    }


def oauth_settings_of(doc: Mapping[str, Any]) -> OAuthSettings:
    return OAuthSettings(
        provider=OAuthProvider(doc["provider"]),
        client_id=doc.get("client_id"),
        tenant_id=doc.get("tenant_id"),
        token_url=doc.get("token_url"),
        scopes=tuple(doc.get("scopes") or ()),
        include_imap=bool(doc.get("include_imap")),
        grant=GenericGrant(doc.get("grant") or GenericGrant.CLIENT_CREDENTIALS.value),
        client_cert_pem=doc.get("client_cert_pem"),
    )


def document_of(settings: SmtpSettings) -> dict[str, Any]:
    """The JSON document stored for ``settings`` (no secrets: they are not in the value)."""
    return {
        "v": DOCUMENT_VERSION,
        "host": settings.host,
        "port": settings.port,
        "security": settings.security.value,
        "sender_email": settings.sender_email,
        "sender_name": settings.sender_name,
        "reply_to": settings.reply_to,
        "username": settings.username,
        "auth_method": settings.auth_method.value,
        "helo_name": settings.helo_name,
        "timeouts": {
            "connect": settings.timeouts.connect,
            "command": settings.timeouts.command,
            "overall": settings.timeouts.overall,
        },
        "tls": {
            "ca_pem": settings.tls.ca_pem,
            "pinned_sha256": settings.tls.pinned_sha256,
            "client_cert_pem": settings.tls.client_cert_pem,
        },
        "proxy": {
            "kind": settings.proxy.kind.value,
            "host": settings.proxy.host,
            "port": settings.proxy.port,
            "username": settings.proxy.username,
        },
        "limits": {
            "max_connections": settings.limits.max_connections,
            "max_messages_per_connection": settings.limits.max_messages_per_connection,
            "per_minute": settings.limits.per_minute,
            "per_hour": settings.limits.per_hour,
            "per_day": settings.limits.per_day,
            "recipients_per_day": settings.limits.recipients_per_day,
        },
        "preset": settings.preset,
    }


def settings_of(doc: Mapping[str, Any]) -> SmtpSettings:
    """Rebuild the value from a stored document; missing keys take the defaults."""
    t: Mapping[str, Any] = doc.get("timeouts") or {}
    tls: Mapping[str, Any] = doc.get("tls") or {}
    px: Mapping[str, Any] = doc.get("proxy") or {}
    lim: Mapping[str, Any] = doc.get("limits") or {}
    d_t, d_lim = Timeouts(), Limits()
    return SmtpSettings(
        host=str(doc["host"]),
        port=int(doc["port"]),
        security=Security(doc["security"]),
        sender_email=str(doc["sender_email"]),
        sender_name=doc.get("sender_name"),
        reply_to=doc.get("reply_to"),
        username=doc.get("username"),
        auth_method=AuthMethod(doc.get("auth_method") or AuthMethod.AUTO.value),
        helo_name=doc.get("helo_name"),
        timeouts=Timeouts(
            connect=float(t.get("connect", d_t.connect)),
            command=float(t.get("command", d_t.command)),
            overall=float(t.get("overall", d_t.overall)),
        ),
        tls=TlsOptions(
            ca_pem=tls.get("ca_pem"),
            pinned_sha256=tls.get("pinned_sha256"),
            client_cert_pem=tls.get("client_cert_pem"),
        ),
        proxy=ProxySettings(
            kind=ProxyKind(px.get("kind") or ProxyKind.NONE.value),
            host=px.get("host"),
            port=px.get("port"),
            username=px.get("username"),
        ),
        limits=Limits(
            max_connections=int(lim.get("max_connections", d_lim.max_connections)),
            max_messages_per_connection=int(
                lim.get("max_messages_per_connection", d_lim.max_messages_per_connection)
            ),
            per_minute=lim.get("per_minute"),
            per_hour=lim.get("per_hour"),
            per_day=lim.get("per_day"),
            recipients_per_day=lim.get("recipients_per_day"),
        ),
        preset=doc.get("preset"),
    )


def _stored(row: SmtpSettingsRow, oauth: SmtpOAuthRow | None) -> StoredSmtpSettings:
    sealed = {f: getattr(row, col) for f, col in COLUMNS.items() if getattr(row, col)}
    settings = settings_of(row.document)
    if oauth is not None and settings.auth_method is AuthMethod.OAUTH2:
        settings = dataclasses.replace(settings, oauth=oauth_settings_of(oauth.document))
        sealed.update(
            {f: getattr(oauth, col) for f, col in OAUTH_COLUMNS.items() if getattr(oauth, col)}
        )
    return StoredSmtpSettings(
        settings=settings,
        sealed=sealed,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


class SqlSmtpSettings:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _row(self, organization_id: uuid.UUID, *, for_update: bool) -> SmtpSettingsRow | None:
        query = select(SmtpSettingsRow).where(SmtpSettingsRow.organization_id == organization_id)
        if for_update:
            query = query.with_for_update()  # serializes concurrent PUTs on PostgreSQL
        return await self._s.scalar(query.execution_options(populate_existing=True))

    async def _oauth_row(self, organization_id: uuid.UUID) -> SmtpOAuthRow | None:
        query = select(SmtpOAuthRow).where(SmtpOAuthRow.organization_id == organization_id)
        return await self._s.scalar(query.execution_options(populate_existing=True))

    async def get(
        self, organization_id: uuid.UUID, *, for_update: bool = False
    ) -> StoredSmtpSettings | None:
        row = await self._row(organization_id, for_update=for_update)
        if row is None:
            return None
        oauth = None
        if row.document.get("auth_method") == AuthMethod.OAUTH2.value:
            oauth = await self._oauth_row(organization_id)
        return _stored(row, oauth)

    async def save(
        self,
        organization_id: uuid.UUID,
        settings: SmtpSettings,
        *,
        sealed: Mapping[SmtpSecretField, str | None],
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> None:
        row = await self._row(organization_id, for_update=True)
        if row is None:
            row = SmtpSettingsRow(organization_id=organization_id, created_at=now)
            self._s.add(row)
        row.document = document_of(settings)
        row.updated_at = now
        row.updated_by = actor_id
        for secret, token in sealed.items():
            if secret in COLUMNS:
                setattr(row, COLUMNS[secret], token)
        await self._save_oauth(organization_id, settings.oauth, sealed, now)
        await self._s.flush()

    async def _save_oauth(
        self,
        organization_id: uuid.UUID,
        oauth: OAuthSettings | None,
        sealed: Mapping[SmtpSecretField, str | None],
        now: datetime,
    ) -> None:
        if oauth is None:  # not (or no longer) OAuth: no sealed token is left behind
            await self._s.execute(
                delete(SmtpOAuthRow).where(SmtpOAuthRow.organization_id == organization_id)
            )
            return
        row = await self._oauth_row(organization_id)
        if row is None:
            row = SmtpOAuthRow(organization_id=organization_id, created_at=now)
            self._s.add(row)
        row.document = oauth_document_of(oauth)
        row.updated_at = now
        for secret, token in sealed.items():
            if secret in OAUTH_COLUMNS:
                setattr(row, OAUTH_COLUMNS[secret], token)
        if SmtpSecretField.OAUTH_ACCESS_TOKEN in sealed and token_cleared(sealed):
            row.access_token_expires_at = None
            row.granted_scopes = None

    async def replace_sealed(
        self, organization_id: uuid.UUID, field: SmtpSecretField, *, old: str, new: str
    ) -> bool:
        table: type[SmtpSettingsRow] | type[SmtpOAuthRow]
        if field in OAUTH_COLUMNS:
            table, name = SmtpOAuthRow, OAUTH_COLUMNS[field]
        else:
            table, name = SmtpSettingsRow, COLUMNS[field]
        column = getattr(table, name)
        result = await self._s.execute(
            update(table)
            .where(table.organization_id == organization_id, column == old)
            .values({name: new})
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def organizations_with_secrets(self) -> Sequence[uuid.UUID]:
        smtp = await self._s.scalars(
            select(SmtpSettingsRow.organization_id).where(
                SmtpSettingsRow.password_enc.is_not(None)
                | SmtpSettingsRow.proxy_password_enc.is_not(None)
                | SmtpSettingsRow.client_key_enc.is_not(None)
            )
        )
        o = SmtpOAuthRow
        oauth = await self._s.scalars(
            select(o.organization_id).where(
                o.client_secret_enc.is_not(None)
                | o.private_key_enc.is_not(None)
                | o.service_account_key_enc.is_not(None)
                | o.refresh_token_enc.is_not(None)
                | o.access_token_enc.is_not(None)
            )
        )
        return sorted(set(smtp) | set(oauth))

    async def history(self, organization_id: uuid.UUID, *, limit: int) -> Sequence[AuditEntry]:
        rows = await self._s.scalars(
            select(AuditRow)
            .where(
                AuditRow.organization_id == organization_id,
                AuditRow.action.startswith(AUDIT_PREFIX, autoescape=True),
            )
            .order_by(AuditRow.at.desc(), AuditRow.id.desc())
            .limit(limit)
        )
        return [
            AuditEntry(
                actor_id=r.actor_id,
                action=r.action,
                target=r.target,
                fields=list(r.fields),
                at=r.at,
            )
            for r in rows
        ]


def token_cleared(sealed: Mapping[SmtpSecretField, str | None]) -> bool:
    return sealed.get(SmtpSecretField.OAUTH_ACCESS_TOKEN) is None


class SqlOAuthTokens:
    """The token service's view of the OAuth row (see ``OAuthTokenRepository``)."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, organization_id: uuid.UUID, *, lock: bool = False) -> StoredOAuth | None:
        query = select(SmtpOAuthRow).where(SmtpOAuthRow.organization_id == organization_id)
        if lock:
            # PostgreSQL: one refresher per mailbox across every worker; the others wait
            # here and then read what the first one stored. SQLite ignores FOR UPDATE: its
            # single writer connection already serializes the writer transactions.
            query = query.with_for_update()
        row = await self._s.scalar(query.execution_options(populate_existing=True))
        if row is None:
            return None
        sealed = {f: getattr(row, c) for f, c in OAUTH_COLUMNS.items() if getattr(row, c)}
        scopes = tuple(row.granted_scopes.split()) if row.granted_scopes is not None else None
        return StoredOAuth(
            settings=oauth_settings_of(row.document),
            sealed=sealed,
            access_token_expires_at=row.access_token_expires_at,
            granted_scopes=scopes,
            refreshed_at=row.refreshed_at,
        )

    async def save_tokens(
        self,
        organization_id: uuid.UUID,
        *,
        access_sealed: str,
        expires_at: datetime,
        scopes: tuple[str, ...] | None,
        refresh_sealed: str | None,
        now: datetime,
    ) -> None:
        values: dict[str, Any] = {
            "access_token_enc": access_sealed,
            "access_token_expires_at": expires_at,
            "granted_scopes": " ".join(scopes) if scopes is not None else None,
            "refreshed_at": now,
        }
        if refresh_sealed is not None:
            values["refresh_token_enc"] = refresh_sealed
        await self._s.execute(
            update(SmtpOAuthRow)
            .where(SmtpOAuthRow.organization_id == organization_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )
