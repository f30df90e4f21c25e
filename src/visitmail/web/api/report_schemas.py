"""Request and response bodies of the visit-reports API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field, JsonValue, field_validator

from visitmail.domain.reports import LEAD_FIELDS, Consent, Gender, Lead, Report, ReportStatus
from visitmail.services.report_ports import FiredNotification
from visitmail.services.reports import ReportChanges, ReportInput, Triggered
from visitmail.web.api.schemas import MAX_INPUT_INT, Strict

_TEXT = Field(default="", max_length=1000)


class LeadIn(Strict):
    """The lead's contact fields; ``null`` counts as empty. Every field may reach a mail
    header, so CR, LF and NUL are refused (422 naming ``lead.<field>``)."""

    gender: Gender = Gender.UNKNOWN
    title: str = _TEXT
    first_name: str = _TEXT
    last_name: str = _TEXT
    company: str = _TEXT
    position: str = _TEXT
    department: str = _TEXT
    email: str = _TEXT
    phone: str = _TEXT
    mobile: str = _TEXT
    street: str = _TEXT
    zip: str = _TEXT
    city: str = _TEXT
    state: str = _TEXT
    country: str = Field(default="", max_length=1000, description="ISO 3166-1 alpha-2, e.g. DE")
    website: str = _TEXT
    language: str = Field(default="", max_length=1000, description="BCP 47 primary tag, e.g. de")

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return "" if value is None else value

    def values(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in LEAD_FIELDS}


class ConsentIn(Strict):
    follow_up_email: bool = Field(default=False, description="the lead agreed to a follow-up")
    marketing: bool = False

    def to_domain(self) -> Consent:
        return Consent(follow_up_email=self.follow_up_email, marketing=self.marketing)


ANSWERS_HELP = (
    "question key -> value: a string (`text`, `single`: the option key), a number, a "
    "boolean, or a list of option keys (`multi`); `null` leaves a question unanswered"
)


class ReportIn(Strict):
    event_id: UUID
    lead: LeadIn = Field(default_factory=LeadIn)
    answers: dict[str, JsonValue] = Field(default_factory=dict, description=ANSWERS_HELP)
    notes: str | None = Field(default="", max_length=20_000)
    consent: ConsentIn = Field(default_factory=ConsentIn)

    def to_input(self) -> ReportInput:
        return ReportInput(
            lead=self.lead.values(),
            answers=self.answers,
            notes=self.notes or "",
            consent=self.consent.to_domain(),
        )


class ReportUpdate(Strict):
    """Parts left out keep their value; a part given replaces it (``lead`` as a whole)."""

    event_id: UUID | None = Field(default=None, description="if given, the report's own")
    revision: int | None = Field(
        default=None,
        ge=0,
        le=MAX_INPUT_INT,
        description="if given, must be the current revision (else 409)",
    )
    lead: LeadIn | None = None
    answers: dict[str, JsonValue] | None = Field(default=None, description=ANSWERS_HELP)
    notes: str | None = Field(default=None, max_length=20_000)
    consent: ConsentIn | None = None

    def to_changes(self) -> ReportChanges:
        return ReportChanges(
            lead=self.lead.values() if self.lead is not None else None,
            answers=self.answers,
            notes=self.notes,
            consent=self.consent.to_domain() if self.consent is not None else None,
        )


class LeadOut(BaseModel):
    gender: Gender
    title: str
    first_name: str
    last_name: str
    company: str
    position: str
    department: str
    email: str
    phone: str
    mobile: str
    street: str
    zip: str
    city: str
    state: str
    country: str
    website: str
    language: str

    @classmethod
    def of(cls, lead: Lead) -> LeadOut:
        return cls.model_validate(lead.as_context())


class ConsentOut(BaseModel):
    follow_up_email: bool
    marketing: bool


class ReportOut(BaseModel):
    id: UUID
    event_id: UUID
    status: ReportStatus
    revision: int = Field(description="grows with every change")
    lead: LeadOut
    answers: dict[str, JsonValue]
    notes: str
    consent: ConsentOut
    captured_by: UUID
    reporter: dict[str, str] = Field(description="name and email of the capturing user")
    captured_at: datetime
    updated_at: datetime
    exported_at: datetime | None
    checked_at: datetime | None

    @classmethod
    def fields_of(cls, report: Report) -> dict[str, object]:
        return {
            "id": report.id,
            "event_id": report.event_id,
            "status": report.status,
            "revision": report.revision,
            "lead": LeadOut.of(report.lead),
            "answers": report.answers,
            "notes": report.notes,
            "consent": ConsentOut(
                follow_up_email=report.consent.follow_up_email,
                marketing=report.consent.marketing,
            ),
            "captured_by": report.captured_by,
            "reporter": report.reporter,
            "captured_at": report.captured_at,
            "updated_at": report.updated_at,
            "exported_at": report.exported_at,
            "checked_at": report.checked_at,
        }

    @classmethod
    def of(cls, report: Report) -> ReportOut:
        return cls.model_validate(cls.fields_of(report))


class NotificationOut(BaseModel):
    rule: str
    kind: str = Field(description="email | webhook")
    message_id: UUID | None = Field(
        description="the queued outbox message (`GET /api/v1/messages/{message_id}`)"
    )
    recipients: list[str]
    duplicate: bool = Field(description="already notified for this report; nothing queued")
    error: str | None = Field(
        default=None, description="kind failed: why nothing was queued, with the mapping path"
    )

    @classmethod
    def of(cls, fired: FiredNotification) -> NotificationOut:
        return cls(
            rule=fired.rule,
            kind=fired.kind,
            message_id=fired.outbox_id,
            recipients=list(fired.recipients),
            duplicate=fired.duplicate,
            error=fired.error,
        )


class TriggeredOut(ReportOut):
    notifications: list[NotificationOut] = Field(description="what the trigger fired")

    @classmethod
    def of_triggered(cls, done: Triggered) -> TriggeredOut:
        return cls.model_validate(
            {
                **ReportOut.fields_of(done.report),
                "notifications": [NotificationOut.of(n) for n in done.notifications],
            }
        )
