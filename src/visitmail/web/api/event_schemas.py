"""Request and response bodies of the events and media-library API."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, Field

from visitmail.domain.events import (
    Event,
    EventSpec,
    EventStatus,
    MediaItem,
    Option,
    Question,
    QuestionType,
)
from visitmail.web.api.schemas import Strict

LabelIn = str | dict[str, str] | None
LABEL_HELP = (
    'the text per language (`{"de": "Interesse", "en": "Interest"}`); a plain string '
    "is the default language's; omitted, the key is used"
)


def _labels(label: LabelIn, key: str, default_language: str) -> dict[str, str]:
    if label is None:
        return {default_language: key}
    if isinstance(label, str):
        return {default_language: label}
    return label


class OptionIn(Strict):
    key: str = Field(max_length=64, description="stable identifier, stored in answers")
    label: LabelIn = Field(default=None, description=LABEL_HELP)

    def to_domain(self, default_language: str) -> Option:
        return Option(self.key, _labels(self.label, self.key, default_language))


class QuestionIn(Strict):
    key: str = Field(max_length=64, description="stable identifier: `answers.<key>`")
    label: LabelIn = Field(default=None, description=LABEL_HELP)
    type: QuestionType
    options: list[OptionIn] = Field(
        default_factory=list, max_length=100, description="for `single` and `multi` only"
    )

    def to_domain(self, default_language: str) -> Question:
        return Question(
            key=self.key,
            label=_labels(self.label, self.key, default_language),
            type=self.type,
            options=tuple(o.to_domain(default_language) for o in self.options),
        )


class EventIn(Strict):
    name: str = Field(max_length=200)
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        max_length=20,
        description="BCP 47 primary tags; the first is the default",
    )
    questions: list[QuestionIn] = Field(default_factory=list, max_length=200)
    status: EventStatus = Field(
        default=EventStatus.DRAFT, description="`live` makes it visible to the app"
    )
    starts_on: date | None = Field(
        default=None,
        description="the first day (`YYYY-MM-DD`, years 2000 to 2100); omitted, no dates",
    )
    ends_on: date | None = Field(
        default=None,
        description="the last day, not before `starts_on` (which it needs); omitted, a "
        "one-day event or no dates",
    )

    def to_domain(self) -> EventSpec:
        default = self.languages[0].strip().lower() if self.languages else ""
        return EventSpec(
            name=self.name,
            languages=tuple(self.languages),
            questions=tuple(q.to_domain(default) for q in self.questions),
            status=self.status,
            starts_on=self.starts_on,
            ends_on=self.ends_on,
        )


class OptionOut(BaseModel):
    key: str
    label: dict[str, str]


class QuestionOut(BaseModel):
    key: str
    label: dict[str, str]
    type: QuestionType
    options: list[OptionOut]


class EventOut(BaseModel):
    id: UUID
    name: str
    languages: list[str]
    default_language: str
    questions: list[QuestionOut]
    status: EventStatus
    starts_on: date | None = Field(description="the first day, or null")
    ends_on: date | None = Field(description="the last day, or null (one day or no dates)")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            name=event.name,
            languages=list(event.languages),
            default_language=event.default_language,
            questions=[
                QuestionOut(
                    key=q.key,
                    label=dict(q.label),
                    type=q.type,
                    options=[OptionOut(key=o.key, label=dict(o.label)) for o in q.options],
                )
                for q in event.questions
            ],
            status=event.status,
            starts_on=event.starts_on,
            ends_on=event.ends_on,
            created_at=event.created_at,
            updated_at=event.updated_at,
        )


class MediaOut(BaseModel):
    id: UUID
    event_id: UUID
    filename: str
    content_type: str = Field(description="recognised from the file's bytes")
    size: int = Field(description="bytes")
    sha256: str = Field(description="hex digest of the bytes")
    title: str | None
    created_at: datetime

    @classmethod
    def of(cls, item: MediaItem) -> MediaOut:
        return cls(
            id=item.id,
            event_id=item.event_id,
            filename=item.filename,
            content_type=item.content_type,
            size=item.size,
            sha256=item.sha256,
            title=item.title,
            created_at=item.created_at,
        )
