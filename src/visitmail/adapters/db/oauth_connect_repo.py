"""The pending browser sign-in (``PendingConnect``), stored in the organization's OAuth row.

It lives under the ``connect`` key of ``smtp_oauth_credentials.document`` (no table of its
own: one pending sign-in per organization, and it belongs to those OAuth settings). Saving
the settings rewrites the document, which drops a pending sign-in on purpose: a Connect
started for other settings must not complete. The PKCE verifier in it is sealed; the
state only as its SHA-256 hash.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import SmtpOAuthRow
from visitmail.domain.oauth import OAuthProvider
from visitmail.domain.oauth_connect import PendingConnect

KEY = "connect"


def _document_of(p: PendingConnect) -> dict[str, Any]:
    return {
        "state_hash": p.state_hash,
        "verifier_sealed": p.verifier_sealed,
        "user_id": str(p.user_id),
        "session_hash": p.session_hash,
        "provider": p.provider.value,
        "client_id": p.client_id,
        "tenant_id": p.tenant_id,
        "mailbox": p.mailbox,
        "redirect_uri": p.redirect_uri,
        "started_at": p.started_at.isoformat(),
        "expires_at": p.expires_at.isoformat(),
        "used": p.used,
    }


def _pending_of(doc: dict[str, Any]) -> PendingConnect | None:
    try:
        return PendingConnect(
            state_hash=str(doc["state_hash"]),
            verifier_sealed=str(doc["verifier_sealed"]),
            user_id=uuid.UUID(str(doc["user_id"])),
            session_hash=doc.get("session_hash"),
            provider=OAuthProvider(doc["provider"]),
            client_id=str(doc["client_id"]),
            tenant_id=doc.get("tenant_id"),
            mailbox=str(doc["mailbox"]),
            redirect_uri=str(doc["redirect_uri"]),
            started_at=datetime.fromisoformat(str(doc["started_at"])),
            expires_at=datetime.fromisoformat(str(doc["expires_at"])),
            used=bool(doc.get("used")),
        )
    except (KeyError, ValueError, TypeError):
        return None  # a malformed entry is as good as none: the state will not match


class SqlPendingConnects:
    """See :class:`~visitmail.services.oauth_connect.PendingConnectRepository`."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, organization_id: uuid.UUID, *, lock: bool = False) -> PendingConnect | None:
        query = select(SmtpOAuthRow.document).where(SmtpOAuthRow.organization_id == organization_id)
        if lock:
            query = query.with_for_update()  # one callback at a time consumes the state
        document = await self._s.scalar(query)
        if not isinstance(document, dict):
            return None
        entry = document.get(KEY)
        return _pending_of(entry) if isinstance(entry, dict) else None

    async def put(self, organization_id: uuid.UUID, pending: PendingConnect) -> bool:
        """Store ``pending`` (replacing an earlier one); ``False`` if the organization has
        no OAuth row."""
        query = select(SmtpOAuthRow.document).where(SmtpOAuthRow.organization_id == organization_id)
        document = await self._s.scalar(query.with_for_update())
        if not isinstance(document, dict):
            return False
        updated = dict(document)
        updated[KEY] = _document_of(pending)
        await self._s.execute(
            update(SmtpOAuthRow)
            .where(SmtpOAuthRow.organization_id == organization_id)
            .values(document=updated)
            .execution_options(synchronize_session=False)
        )
        return True
