"""SQL repositories for events, their media library and visit reports. Every query filters
on ``organization_id``; media bytes are read only when asked for."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import EventMediaRow, EventRow, ReportRow, UserRow
from visitmail.domain.events import (
    AnswerCounts,
    Event,
    EventSpec,
    EventStatus,
    MediaItem,
    Option,
    Question,
    QuestionType,
)
from visitmail.domain.ids import new_id
from visitmail.domain.reports import LEAD_FIELDS, Consent, Gender, Lead, Report, ReportStatus
from visitmail.services.report_ports import ReportContent

# --- events -------------------------------------------------------------------------------


def _questions_doc(questions: Sequence[Question]) -> list[dict[str, object]]:
    return [
        {
            "key": q.key,
            "label": dict(q.label),
            "type": q.type.value,
            "options": [{"key": o.key, "label": dict(o.label)} for o in q.options],
        }
        for q in questions
    ]


def _questions(doc: Sequence[dict[str, Any]]) -> tuple[Question, ...]:
    return tuple(
        Question(
            key=str(q["key"]),
            label={str(k): str(v) for k, v in q["label"].items()},
            type=QuestionType(q["type"]),
            options=tuple(
                Option(str(o["key"]), {str(k): str(v) for k, v in o["label"].items()})
                for o in q.get("options", [])
            ),
        )
        for q in doc
    )


def _event(row: EventRow) -> Event:
    return Event(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        languages=tuple(row.languages),
        questions=_questions(row.questions),
        status=EventStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        starts_on=row.starts_on,
        ends_on=row.ends_on,
    )


class SqlEvents:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(
        self,
        organization_id: uuid.UUID,
        spec: EventSpec,
        *,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> Event:
        row = EventRow(
            id=new_id(),
            organization_id=organization_id,
            name=spec.name,
            languages=list(spec.languages),
            questions=_questions_doc(spec.questions),
            status=spec.status.value,
            starts_on=spec.starts_on,
            ends_on=spec.ends_on,
            created_at=now,
            updated_at=now,
            created_by=actor_id,
            updated_by=actor_id,
        )
        self._s.add(row)
        await self._s.flush()
        return _event(row)

    async def _row(self, organization_id: uuid.UUID, event_id: uuid.UUID) -> EventRow | None:
        return await self._s.scalar(
            select(EventRow).where(
                EventRow.organization_id == organization_id, EventRow.id == event_id
            )
        )

    async def get(self, organization_id: uuid.UUID, event_id: uuid.UUID) -> Event | None:
        row = await self._row(organization_id, event_id)
        return _event(row) if row else None

    async def list(
        self, organization_id: uuid.UUID, *, status: EventStatus | None = None
    ) -> Sequence[Event]:
        query = select(EventRow).where(EventRow.organization_id == organization_id)
        if status is not None:
            query = query.where(EventRow.status == status.value)
        rows = await self._s.scalars(query.order_by(EventRow.created_at, EventRow.id))
        return [_event(r) for r in rows]

    async def replace(
        self,
        organization_id: uuid.UUID,
        event_id: uuid.UUID,
        spec: EventSpec,
        *,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> Event | None:
        row = await self._row(organization_id, event_id)
        if row is None:
            return None
        row.name = spec.name
        row.languages = list(spec.languages)
        row.questions = _questions_doc(spec.questions)
        row.status = spec.status.value
        row.starts_on = spec.starts_on
        row.ends_on = spec.ends_on
        row.updated_at = now
        row.updated_by = actor_id
        await self._s.flush()
        return _event(row)


# --- media --------------------------------------------------------------------------------

_MEDIA_COLUMNS = (
    EventMediaRow.id,
    EventMediaRow.organization_id,
    EventMediaRow.event_id,
    EventMediaRow.filename,
    EventMediaRow.content_type,
    EventMediaRow.size,
    EventMediaRow.sha256,
    EventMediaRow.title,
    EventMediaRow.created_at,
    EventMediaRow.created_by,
)


def _media(values: Sequence[Any]) -> MediaItem:
    return MediaItem(*values)


class SqlMedia:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(
        self,
        organization_id: uuid.UUID,
        event_id: uuid.UUID,
        *,
        filename: str,
        content_type: str,
        data: bytes,
        sha256: str,
        title: str | None,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> MediaItem:
        row = EventMediaRow(
            id=new_id(),
            organization_id=organization_id,
            event_id=event_id,
            filename=filename,
            content_type=content_type,
            size=len(data),
            sha256=sha256,
            title=title,
            data=data,
            created_at=now,
            created_by=actor_id,
        )
        self._s.add(row)
        await self._s.flush()
        return MediaItem(
            row.id,
            organization_id,
            event_id,
            filename,
            content_type,
            len(data),
            sha256,
            title,
            now,
            actor_id,
        )

    async def list(self, organization_id: uuid.UUID, event_id: uuid.UUID) -> Sequence[MediaItem]:
        rows = await self._s.execute(
            select(*_MEDIA_COLUMNS)
            .where(
                EventMediaRow.organization_id == organization_id,
                EventMediaRow.event_id == event_id,
            )
            .order_by(EventMediaRow.created_at, EventMediaRow.id)
        )
        return [_media(r) for r in rows]

    async def get(
        self, organization_id: uuid.UUID, event_id: uuid.UUID, media_id: uuid.UUID
    ) -> MediaItem | None:
        row = (
            await self._s.execute(
                select(*_MEDIA_COLUMNS).where(
                    EventMediaRow.organization_id == organization_id,
                    EventMediaRow.event_id == event_id,
                    EventMediaRow.id == media_id,
                )
            )
        ).first()
        return _media(row) if row else None

    async def content(
        self, organization_id: uuid.UUID, media_id: uuid.UUID
    ) -> tuple[MediaItem, bytes] | None:
        row = (
            await self._s.execute(
                select(*_MEDIA_COLUMNS, EventMediaRow.data).where(
                    EventMediaRow.organization_id == organization_id,
                    EventMediaRow.id == media_id,
                )
            )
        ).first()
        if row is None:
            return None
        *described, data = row
        return _media(described), bytes(data)

    async def delete(
        self, organization_id: uuid.UUID, event_id: uuid.UUID, media_id: uuid.UUID
    ) -> bool:
        found = await self._s.scalar(
            delete(EventMediaRow)
            .where(
                EventMediaRow.organization_id == organization_id,
                EventMediaRow.event_id == event_id,
                EventMediaRow.id == media_id,
            )
            .returning(EventMediaRow.id)
        )
        return found is not None


# --- reports ------------------------------------------------------------------------------


def _lead(doc: dict[str, Any]) -> Lead:
    values = {k: str(v) for k, v in doc.items() if k != "gender" and k in LEAD_FIELDS}
    return Lead(gender=Gender(doc.get("gender", Gender.UNKNOWN.value)), **values)


def _report(row: ReportRow, user: UserRow | _Reporter | None) -> Report:
    reporter = {"name": user.display_name, "email": user.email} if user is not None else {}
    return Report(
        id=row.id,
        organization_id=row.organization_id,
        event_id=row.event_id,
        lead=_lead(row.lead),
        answers=dict(row.answers),
        notes=row.notes,
        consent=Consent(
            follow_up_email=row.consent_follow_up_email, marketing=row.consent_marketing
        ),
        status=ReportStatus(row.status),
        captured_by=row.captured_by,
        captured_at=row.captured_at,
        updated_at=row.updated_at,
        revision=row.revision,
        reporter=reporter,
        exported_at=row.exported_at,
        checked_at=row.checked_at,
    )


def _write_content(row: ReportRow, content: ReportContent) -> None:
    row.lead = {
        **{k: v for k, v in content.lead.as_context().items() if k != "gender"},
        "gender": content.lead.gender.value,
    }
    row.lead_email = content.lead.email
    row.answers = dict(content.answers)
    row.notes = content.notes
    row.consent_follow_up_email = content.consent.follow_up_email
    row.consent_marketing = content.consent.marketing


_REPORT_COLUMNS = tuple(sa_inspect(ReportRow).column_attrs)


class _Reporter(NamedTuple):
    display_name: str
    email: str


_ANSWER_BATCH = 500  # answers documents per fetch when counting what reports answered


class SqlReports:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _row(
        self, organization_id: uuid.UUID, report_id: uuid.UUID, *, for_update: bool = False
    ) -> ReportRow | None:
        query = select(ReportRow).where(
            ReportRow.organization_id == organization_id, ReportRow.id == report_id
        )
        if for_update:
            query = query.with_for_update()
        return await self._s.scalar(query)

    async def _reporter(self, row: ReportRow) -> _Reporter | None:
        found = (
            await self._s.execute(
                select(UserRow.display_name, UserRow.email).where(
                    UserRow.id == row.captured_by, UserRow.organization_id == row.organization_id
                )
            )
        ).first()
        return _Reporter(found[0], found[1]) if found is not None else None

    async def add(
        self,
        organization_id: uuid.UUID,
        event_id: uuid.UUID,
        content: ReportContent,
        *,
        captured_by: uuid.UUID,
        now: datetime,
    ) -> Report:
        row = ReportRow(
            id=new_id(),
            organization_id=organization_id,
            event_id=event_id,
            status=ReportStatus.DRAFT.value,
            revision=1,
            captured_by=captured_by,
            captured_at=now,
            updated_at=now,
            updated_by=captured_by,
            exported_at=None,
            checked_at=None,
        )
        _write_content(row, content)
        # A Core INSERT: the hot path of capture; the ORM's flush costs several times more.
        values = {attr.key: getattr(row, attr.key) for attr in _REPORT_COLUMNS}
        await self._s.execute(insert(ReportRow).values(values))
        return _report(row, await self._reporter(row))

    async def get(
        self, organization_id: uuid.UUID, report_id: uuid.UUID, *, for_update: bool = False
    ) -> Report | None:
        row = await self._row(organization_id, report_id, for_update=for_update)
        return _report(row, await self._reporter(row)) if row else None

    async def list(
        self,
        organization_id: uuid.UUID,
        *,
        event_id: uuid.UUID | None = None,
        status: ReportStatus | None = None,
        captured_by: uuid.UUID | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[Report]:
        query = (
            select(ReportRow, UserRow)
            .outerjoin(
                UserRow,
                (UserRow.id == ReportRow.captured_by)
                & (UserRow.organization_id == ReportRow.organization_id),
            )
            .where(ReportRow.organization_id == organization_id)
        )
        if event_id is not None:
            query = query.where(ReportRow.event_id == event_id)
        if status is not None:
            query = query.where(ReportRow.status == status.value)
        if captured_by is not None:
            query = query.where(ReportRow.captured_by == captured_by)
        query = query.order_by(ReportRow.captured_at.desc(), ReportRow.id).limit(limit)
        rows = await self._s.execute(query.offset(offset))
        # An outer join: the user is None if the capturing account no longer exists.
        return [_report(report, user) for report, user in rows]

    async def answer_counts(self, organization_id: uuid.UUID, event_id: uuid.UUID) -> AnswerCounts:
        query = (
            select(ReportRow.answers)
            .where(ReportRow.organization_id == organization_id, ReportRow.event_id == event_id)
            .execution_options(yield_per=_ANSWER_BATCH)
        )
        counts = AnswerCounts()
        result = await self._s.stream_scalars(query)
        async for answers in result:
            if isinstance(answers, dict):
                counts.add(answers)
        return counts

    async def update_content(
        self,
        organization_id: uuid.UUID,
        report_id: uuid.UUID,
        content: ReportContent,
        *,
        revision: int,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> Report | None:
        row = await self._row(organization_id, report_id)
        if row is None:
            return None
        _write_content(row, content)
        row.revision = revision
        row.updated_at = now
        row.updated_by = actor_id
        await self._s.flush()
        return _report(row, await self._reporter(row))

    async def set_status(
        self,
        organization_id: uuid.UUID,
        report_id: uuid.UUID,
        status: ReportStatus,
        *,
        exported_at: datetime | None = None,
        checked_at: datetime | None = None,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> Report | None:
        row = await self._row(organization_id, report_id)
        if row is None:
            return None
        row.status = status.value
        if exported_at is not None:
            row.exported_at = exported_at
        if checked_at is not None:
            row.checked_at = checked_at
        row.updated_at = now
        row.updated_by = actor_id
        await self._s.flush()
        return _report(row, await self._reporter(row))
