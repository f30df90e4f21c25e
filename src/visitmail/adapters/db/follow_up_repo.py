"""SQL repositories of follow-up templates, the suppression list and the record of
follow-ups sent, and the set-based reads of the send path (:class:`SqlFollowUpSources`).
Every query filters on ``organization_id``; every look-up of the send path is served by an
index (migration ``0009_send_path_indexes``): the rejected-address hook by the partial
index ``ix_outbox_recipients_rejected`` on ``(organization_id, lower(address))`` of
rejected recipients, so its cost does not grow with the outbox, and the latest lift of
each address by the primary key of ``suppression_lifts`` (migration 0011)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, literal_column, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from visitmail.adapters.db.report_repos import _MEDIA_COLUMNS as MEDIA_COLUMNS
from visitmail.adapters.db.report_repos import _event as event_of
from visitmail.adapters.db.report_repos import _media as media_of
from visitmail.adapters.db.report_repos import _report as report_of
from visitmail.adapters.db.tables import (
    AuditRow,
    EventMediaRow,
    EventRow,
    FollowUpSendRow,
    FollowUpTemplateRow,
    OutboxMessageRow,
    OutboxRecipientRow,
    ReportRow,
    SuppressionLiftRow,
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
from visitmail.domain.ids import new_id
from visitmail.domain.outbox import MessageKind, RecipientStatus
from visitmail.domain.reports import Report
from visitmail.domain.smtp_replies import SmtpReply, rejects_the_address
from visitmail.services.follow_up_ports import (
    FollowUpSend,
    NewFollowUpSend,
    Refusal,
    Suppression,
    SuppressionPage,
)
from visitmail.services.ports import AuditEntry

#: Audit actions of the suppression list start with this (``services/suppressions.py``).
AUDIT_PREFIX = "suppression."

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
                id=new_id(),
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


def _suppression(row: SuppressionRow, creator: str | None) -> Suppression:
    refusal = None
    if row.reply_code is not None or row.reply_text is not None:
        refusal = Refusal(
            code=row.reply_code,
            enhanced=row.reply_enhanced,
            text=row.reply_text or "",
            outbox_id=row.source_outbox_id,
            message_id=row.source_message_id,
        )
    return Suppression(
        address=row.address,
        reason=SuppressionReason(row.reason),
        created_at=row.created_at,
        created_by=row.created_by,
        created_by_name=creator,
        note=row.note,
        refusal=refusal,
    )


def _with_creator(organization_id: uuid.UUID) -> Any:
    """Suppression rows with the display name of who added them (None if nobody did, or
    the user is gone)."""
    return select(SuppressionRow, UserRow.display_name).outerjoin(
        UserRow,
        (UserRow.id == SuppressionRow.created_by) & (UserRow.organization_id == organization_id),
    )


class SqlSuppressions:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, organization_id: uuid.UUID, address: str) -> Suppression | None:
        found = (
            await self._s.execute(
                _with_creator(organization_id).where(
                    SuppressionRow.organization_id == organization_id,
                    SuppressionRow.address == address.lower(),
                )
            )
        ).first()
        return _suppression(found[0], found[1]) if found else None

    async def add(
        self,
        organization_id: uuid.UUID,
        address: str,
        reason: SuppressionReason,
        now: datetime,
        *,
        created_by: uuid.UUID | None = None,
        note: str | None = None,
    ) -> bool:
        # One INSERT … ON CONFLICT DO NOTHING: a concurrent add (an unsubscribe, another
        # admin) wins without an error and without being overwritten.
        table = cast(Table, SuppressionRow.__table__)
        added = await self._s.execute(
            _insert(self._s, table)
            .values(
                organization_id=organization_id,
                address=address.lower(),
                reason=reason.value,
                created_at=now,
                created_by=created_by,
                note=note,
            )
            .on_conflict_do_nothing()
            .returning(table.c.address)
        )
        return added.first() is not None

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
    ) -> dict[str, Refusal]:
        wanted = sorted({a.lower() for a in addresses})
        if not wanted:
            return {}
        m, r, lift = OutboxMessageRow, OutboxRecipientRow, SuppressionLiftRow
        address = func.lower(r.address)
        found = await self._s.execute(
            select(address, r.last_code, r.last_enhanced, r.last_text, m.id, m.message_id)
            .join(m, m.id == r.message_pk)
            # The latest lift of the address, by primary key: refusals from before it were
            # forgiven by whoever lifted the suppression.
            .outerjoin(lift, (lift.organization_id == organization_id) & (lift.address == address))
            .where(
                r.organization_id == organization_id,
                address.in_(wanted),
                r.status == _REJECTED,
                r.role == "to",
                r.last_code >= 500,
                r.last_code < 600,
                m.organization_id == organization_id,
                m.kind == MessageKind.FOLLOW_UP.value,
                or_(lift.lifted_at.is_(None), r.updated_at > lift.lifted_at),
            )
            .order_by(r.updated_at.desc(), r.id.desc())
        )
        # Only a refusal of the address itself suppresses it: a wrong sender, a policy,
        # size or content refusal says nothing about the lead (domain.smtp_replies).
        refusals: dict[str, Refusal] = {}
        for row_address, code, enhanced, text, outbox_id, message_id in found:
            if row_address in refusals or code is None:
                continue
            reply = SmtpReply(code, text or "")
            if rejects_the_address(reply):
                refusals[row_address] = Refusal(code, enhanced, text or "", outbox_id, message_id)
        return refusals

    async def add_many(
        self,
        organization_id: uuid.UUID,
        addresses: Collection[str],
        reason: SuppressionReason,
        now: datetime,
        *,
        refusals: Mapping[str, Refusal] | None = None,
    ) -> None:
        wanted = sorted({a.lower() for a in addresses})
        if not wanted:
            return
        evidence = {a.lower(): r for a, r in (refusals or {}).items()}
        rows = []
        for a in wanted:
            refusal = evidence.get(a)
            rows.append(
                {
                    "organization_id": organization_id,
                    "address": a,
                    "reason": reason.value,
                    "created_at": now,
                    "reply_code": refusal.code if refusal else None,
                    "reply_enhanced": refusal.enhanced if refusal else None,
                    "reply_text": refusal.text if refusal else None,
                    "source_outbox_id": refusal.outbox_id if refusal else None,
                    "source_message_id": refusal.message_id if refusal else None,
                }
            )
        table = cast(Table, SuppressionRow.__table__)
        await self._s.execute(
            _insert(self._s, table).on_conflict_do_nothing().returning(table.c.address), rows
        )

    async def page(
        self, organization_id: uuid.UUID, *, search: str | None, limit: int, offset: int
    ) -> SuppressionPage:
        where = [SuppressionRow.organization_id == organization_id]
        if search:
            where.append(SuppressionRow.address.contains(search.lower(), autoescape=True))
        total = await self._s.scalar(select(func.count()).select_from(SuppressionRow).where(*where))
        rows = await self._s.execute(
            _with_creator(organization_id)
            .where(*where)
            .order_by(SuppressionRow.created_at.desc(), SuppressionRow.address)
            .limit(limit)
            .offset(offset)
        )
        return SuppressionPage([_suppression(row, name) for row, name in rows], total or 0)

    async def remove(
        self, organization_id: uuid.UUID, address: str, *, actor_id: uuid.UUID | None, now: datetime
    ) -> bool:
        key = address.lower()
        gone = await self._s.execute(
            delete(SuppressionRow)
            .where(SuppressionRow.organization_id == organization_id, SuppressionRow.address == key)
            .returning(SuppressionRow.address)
        )
        if gone.first() is None:
            return False
        table = cast(Table, SuppressionLiftRow.__table__)
        statement = _insert(self._s, table).values(
            organization_id=organization_id, address=key, lifted_at=now, lifted_by=actor_id
        )
        await self._s.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.organization_id, table.c.address],
                set_={"lifted_at": now, "lifted_by": actor_id},
            )
        )
        return True

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
        return [AuditEntry(r.actor_id, r.action, r.target, list(r.fields), r.at) for r in rows]


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
            id=new_id(),
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
                "id": new_id(),
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
            # Without statistics (an embedded database never gathers them) SQLite's planner
            # weighs a list of 100 ids above the organization's equality and walks every
            # report of the organization through ix_reports_org_lead_email: the primary
            # key's index is the plan, whatever the history.
            .with_hint(ReportRow, "INDEXED BY sqlite_autoindex_reports_1", dialect_name="sqlite")
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
