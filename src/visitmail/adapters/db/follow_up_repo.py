"""SQL repositories of follow-up templates, the suppression list and the record of
follow-ups sent, and the set-based reads of the send path (:class:`SqlFollowUpSources`).
Every query filters on ``organization_id``; every look-up of the send path is served by an
index (migration ``0009_send_path_indexes``): the rejected-address hook by the partial
index ``ix_outbox_recipients_rejected`` on ``(organization_id, lower(address))`` of
rejected recipients, so its cost does not grow with the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from visitmail.adapters.db.report_repos import _MEDIA_COLUMNS as MEDIA_COLUMNS
from visitmail.adapters.db.report_repos import _event as event_of
from visitmail.adapters.db.report_repos import _media as media_of
from visitmail.adapters.db.report_repos import _report as report_of
from visitmail.adapters.db.tables import (
    EventMediaRow,
    EventRow,
    FollowUpSendRow,
    FollowUpTemplateRow,
    OutboxMessageRow,
    OutboxRecipientRow,
    ReportRow,
    SuppressionRow,
    UserRow,
)
from visitmail.domain.events import Event, MediaItem
from visitmail.domain.follow_up import (
    FollowUpStatus,
    FollowUpTemplate,
    FollowUpTemplateSpec,
    SuppressionReason,
)
from visitmail.domain.outbox import MessageKind, RecipientStatus
from visitmail.domain.reports import Report
from visitmail.domain.smtp_replies import SmtpReply, rejects_the_address
from visitmail.services.follow_up_ports import FollowUpSend, NewFollowUpSend, Suppression

# The status of a permanently refused recipient, as a literal in the SQL text: the partial
# index ``ix_outbox_recipients_rejected`` (``WHERE status = 'rejected'``) serves a query
# only when its WHERE clause holds the very same term (a bound parameter does not match).
_REJECTED: ColumnClause[str] = literal_column(f"'{RecipientStatus.REJECTED.value}'")


def _insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT (it has ``on_conflict_do_nothing``) for SQLite or PostgreSQL.
    Executed with a list of rows and RETURNING, SQLAlchemy sends one multi-row statement
    per 1,000 rows ("insertmanyvalues"), compiled once."""
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


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

    async def for_events(
        self, organization_id: uuid.UUID, event_ids: Collection[uuid.UUID]
    ) -> Sequence[FollowUpTemplate]:
        if not event_ids:
            return []
        rows = await self._s.scalars(
            select(FollowUpTemplateRow).where(
                FollowUpTemplateRow.organization_id == organization_id,
                FollowUpTemplateRow.event_id.in_(list(event_ids)),
            )
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

    async def listed(self, organization_id: uuid.UUID, addresses: Collection[str]) -> set[str]:
        wanted = sorted({a.lower() for a in addresses})
        if not wanted:
            return set()
        found = await self._s.scalars(
            select(SuppressionRow.address).where(
                SuppressionRow.organization_id == organization_id,
                SuppressionRow.address.in_(wanted),
            )
        )
        return set(found)

    async def rejected_among(
        self, organization_id: uuid.UUID, addresses: Collection[str]
    ) -> set[str]:
        wanted = sorted({a.lower() for a in addresses})
        if not wanted:
            return set()
        m, r = OutboxMessageRow, OutboxRecipientRow
        address = func.lower(r.address)
        found = await self._s.execute(
            select(address, r.last_code, r.last_text)
            .join(m, m.id == r.message_pk)
            .where(
                r.organization_id == organization_id,
                address.in_(wanted),
                r.status == _REJECTED,
                r.role == "to",
                r.last_code >= 500,
                r.last_code < 600,
                m.organization_id == organization_id,
                m.kind == MessageKind.FOLLOW_UP.value,
            )
        )
        # Only a refusal of the address itself suppresses it: a wrong sender, a policy,
        # size or content refusal says nothing about the lead (domain.smtp_replies).
        return {
            row_address
            for row_address, code, text in found
            if code is not None and rejects_the_address(SmtpReply(code, text or ""))
        }

    async def add_many(
        self,
        organization_id: uuid.UUID,
        addresses: Collection[str],
        reason: SuppressionReason,
        now: datetime,
    ) -> None:
        wanted = sorted({a.lower() for a in addresses})
        if not wanted:
            return
        rows = [
            {
                "organization_id": organization_id,
                "address": a,
                "reason": reason.value,
                "created_at": now,
            }
            for a in wanted
        ]
        table = cast(Table, SuppressionRow.__table__)
        await self._s.execute(
            _insert(self._s, table).on_conflict_do_nothing().returning(table.c.address), rows
        )


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

    async def queued_for(
        self, organization_id: uuid.UUID, report_ids: Collection[uuid.UUID]
    ) -> Sequence[FollowUpSend]:
        if not report_ids:
            return []
        rows = await self._s.scalars(
            select(FollowUpSendRow)
            .where(
                FollowUpSendRow.organization_id == organization_id,
                FollowUpSendRow.report_id.in_(list(report_ids)),
                FollowUpSendRow.status == FollowUpStatus.QUEUED.value,
            )
            .order_by(
                FollowUpSendRow.report_id, FollowUpSendRow.template_id, FollowUpSendRow.sequence
            )
        )
        return [_send(r) for r in rows]

    async def record_many(
        self,
        organization_id: uuid.UUID,
        sends: Sequence[NewFollowUpSend],
        *,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> None:
        if not sends:
            return
        rows = [
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "report_id": send.report_id,
                "template_id": send.template_id,
                "sequence": send.sequence,
                "status": send.status.value,
                "outbox_id": send.outbox_id,
                "address": send.address,
                "created_at": now,
                "created_by": actor_id,
            }
            for send in sends
        ]
        # RETURNING makes it one multi-row INSERT ("insertmanyvalues"), not an executemany.
        table = cast(Table, FollowUpSendRow.__table__)
        await self._s.execute(insert(table).returning(table.c.id), rows)


class SqlFollowUpSources:
    """Reports (with their reporters), events and media files by id, one query each."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def reports(
        self, organization_id: uuid.UUID, report_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, Report]:
        if not report_ids:
            return {}
        rows = await self._s.execute(
            select(ReportRow, UserRow)
            .outerjoin(
                UserRow,
                (UserRow.id == ReportRow.captured_by)
                & (UserRow.organization_id == ReportRow.organization_id),
            )
            .where(
                ReportRow.organization_id == organization_id,
                ReportRow.id.in_(list(report_ids)),
            )
        )
        return {report.id: report_of(report, user) for report, user in rows}

    async def events(
        self, organization_id: uuid.UUID, event_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, Event]:
        if not event_ids:
            return {}
        rows = await self._s.scalars(
            select(EventRow).where(
                EventRow.organization_id == organization_id, EventRow.id.in_(list(event_ids))
            )
        )
        return {row.id: event_of(row) for row in rows}

    async def media(
        self, organization_id: uuid.UUID, media_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[MediaItem, bytes]]:
        if not media_ids:
            return {}
        rows = await self._s.execute(
            select(*MEDIA_COLUMNS, EventMediaRow.data).where(
                EventMediaRow.organization_id == organization_id,
                EventMediaRow.id.in_(list(media_ids)),
            )
        )
        found: dict[uuid.UUID, tuple[MediaItem, bytes]] = {}
        for row in rows:
            *described, data = row
            item = media_of(described)
            found[item.id] = (item, bytes(data))
        return found
