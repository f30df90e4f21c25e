"""SQL repositories of follow-up templates, the suppression list and the record of
follow-ups sent. Every query filters on ``organization_id``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import (
    FollowUpSendRow,
    FollowUpTemplateRow,
    OutboxMessageRow,
    OutboxRecipientRow,
    SuppressionRow,
)
from visitmail.domain.follow_up import (
    FollowUpStatus,
    FollowUpTemplate,
    FollowUpTemplateSpec,
    SuppressionReason,
)
from visitmail.domain.outbox import MessageKind, RecipientStatus
from visitmail.services.follow_up_ports import FollowUpSend, Suppression


def _template(row: FollowUpTemplateRow) -> FollowUpTemplate:
    return FollowUpTemplate(
        id=row.id,
        organization_id=row.organization_id,
        event_id=row.event_id,
        language=row.language,
        spec=FollowUpTemplateSpec(
            subject=row.subject,
            text=row.text,
            html=row.html,
            attachments=tuple(uuid.UUID(str(a)) for a in row.attachments),
            reply_to_reporter=row.reply_to_reporter,
            bcc_reporter=row.bcc_reporter,
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlFollowUpTemplates:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _row(
        self, organization_id: uuid.UUID, event_id: uuid.UUID, language: str
    ) -> FollowUpTemplateRow | None:
        return await self._s.scalar(
            select(FollowUpTemplateRow).where(
                FollowUpTemplateRow.organization_id == organization_id,
                FollowUpTemplateRow.event_id == event_id,
                FollowUpTemplateRow.language == language,
            )
        )

    async def get(
        self, organization_id: uuid.UUID, event_id: uuid.UUID, language: str
    ) -> FollowUpTemplate | None:
        row = await self._row(organization_id, event_id, language)
        return _template(row) if row else None

    async def list(
        self, organization_id: uuid.UUID, event_id: uuid.UUID
    ) -> Sequence[FollowUpTemplate]:
        rows = await self._s.scalars(
            select(FollowUpTemplateRow)
            .where(
                FollowUpTemplateRow.organization_id == organization_id,
                FollowUpTemplateRow.event_id == event_id,
            )
            .order_by(FollowUpTemplateRow.language)
        )
        return [_template(r) for r in rows]

    async def put(
        self,
        organization_id: uuid.UUID,
        event_id: uuid.UUID,
        language: str,
        spec: FollowUpTemplateSpec,
        *,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> FollowUpTemplate:
        row = await self._row(organization_id, event_id, language)
        if row is None:
            row = FollowUpTemplateRow(
                id=uuid.uuid4(),
                organization_id=organization_id,
                event_id=event_id,
                language=language,
                created_at=now,
            )
            self._s.add(row)
        row.subject = spec.subject
        row.text = spec.text
        row.html = spec.html
        row.attachments = [str(a) for a in spec.attachments]
        row.reply_to_reporter = spec.reply_to_reporter
        row.bcc_reporter = spec.bcc_reporter
        row.updated_at = now
        row.updated_by = actor_id
        await self._s.flush()
        return _template(row)


class SqlSuppressions:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, organization_id: uuid.UUID, address: str) -> Suppression | None:
        row = await self._s.get(SuppressionRow, (organization_id, address.lower()))
        if row is None:
            return None
        return Suppression(row.address, SuppressionReason(row.reason), row.created_at)

    async def add(
        self,
        organization_id: uuid.UUID,
        address: str,
        reason: SuppressionReason,
        now: datetime,
    ) -> bool:
        if await self.get(organization_id, address) is not None:
            return False
        try:
            async with self._s.begin_nested():
                self._s.add(
                    SuppressionRow(
                        organization_id=organization_id,
                        address=address.lower(),
                        reason=reason.value,
                        created_at=now,
                    )
                )
                await self._s.flush()
        except IntegrityError:  # a concurrent unsubscribe added it first
            return False
        return True

    async def rejected_before(self, organization_id: uuid.UUID, address: str) -> bool:
        m, r = OutboxMessageRow, OutboxRecipientRow
        query = select(
            exists().where(
                r.organization_id == organization_id,
                func.lower(r.address) == address.lower(),
                r.role == "to",
                r.status == RecipientStatus.REJECTED.value,
                r.last_code >= 500,
                r.last_code < 600,
                m.id == r.message_pk,
                m.organization_id == organization_id,
                m.kind == MessageKind.FOLLOW_UP.value,
            )
        )
        return bool(await self._s.scalar(query))


def _send(row: FollowUpSendRow) -> FollowUpSend:
    return FollowUpSend(
        id=row.id,
        report_id=row.report_id,
        template_id=row.template_id,
        sequence=row.sequence,
        status=FollowUpStatus(row.status),
        outbox_id=row.outbox_id,
        address=row.address,
        created_at=row.created_at,
    )


class SqlFollowUpSends:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def sent(
        self, organization_id: uuid.UUID, report_id: uuid.UUID, template_id: uuid.UUID
    ) -> Sequence[FollowUpSend]:
        rows = await self._s.scalars(
            select(FollowUpSendRow)
            .where(
                FollowUpSendRow.organization_id == organization_id,
                FollowUpSendRow.report_id == report_id,
                FollowUpSendRow.template_id == template_id,
                FollowUpSendRow.status == FollowUpStatus.QUEUED.value,
            )
            .order_by(FollowUpSendRow.sequence)
        )
        return [_send(r) for r in rows]

    async def record(
        self,
        organization_id: uuid.UUID,
        *,
        report_id: uuid.UUID,
        template_id: uuid.UUID,
        sequence: int | None,
        status: FollowUpStatus,
        outbox_id: uuid.UUID | None,
        address: str,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> FollowUpSend:
        row = FollowUpSendRow(
            id=uuid.uuid4(),
            organization_id=organization_id,
            report_id=report_id,
            template_id=template_id,
            sequence=sequence,
            status=status.value,
            outbox_id=outbox_id,
            address=address,
            created_at=now,
            created_by=actor_id,
        )
        self._s.add(row)
        await self._s.flush()
        return _send(row)
