"""SQL repository for organizations' SMTP settings; every query filters on the organization.

The non-secret settings are stored as a versioned JSON document (``document_of`` /
``settings_of``); each secret is a separate column holding a secret-box token.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import AuditRow, SmtpSettingsRow
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
from visitmail.services.ports import AuditEntry, SmtpSecretField, StoredSmtpSettings

DOCUMENT_VERSION = 1
AUDIT_PREFIX = "smtp_settings."

COLUMNS: dict[SmtpSecretField, str] = {
    SmtpSecretField.PASSWORD: "password_enc",
    SmtpSecretField.PROXY_PASSWORD: "proxy_password_enc",
    SmtpSecretField.CLIENT_KEY: "client_key_enc",
}


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


def _stored(row: SmtpSettingsRow) -> StoredSmtpSettings:
    sealed = {f: getattr(row, col) for f, col in COLUMNS.items() if getattr(row, col)}
    return StoredSmtpSettings(
        settings=settings_of(row.document),
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

    async def get(
        self, organization_id: uuid.UUID, *, for_update: bool = False
    ) -> StoredSmtpSettings | None:
        row = await self._row(organization_id, for_update=for_update)
        return _stored(row) if row else None

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
            setattr(row, COLUMNS[secret], token)
        await self._s.flush()

    async def replace_sealed(
        self, organization_id: uuid.UUID, field: SmtpSecretField, *, old: str, new: str
    ) -> bool:
        column = getattr(SmtpSettingsRow, COLUMNS[field])
        result = await self._s.execute(
            update(SmtpSettingsRow)
            .where(SmtpSettingsRow.organization_id == organization_id, column == old)
            .values({COLUMNS[field]: new})
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def organizations_with_secrets(self) -> Sequence[uuid.UUID]:
        rows = await self._s.scalars(
            select(SmtpSettingsRow.organization_id)
            .where(
                SmtpSettingsRow.password_enc.is_not(None)
                | SmtpSettingsRow.proxy_password_enc.is_not(None)
                | SmtpSettingsRow.client_key_enc.is_not(None)
            )
            .order_by(SmtpSettingsRow.organization_id)
        )
        return list(rows)

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
