"""Visit reports and their leads, as the mapping and the templates see them.

A report is captured in the app with an event's questionnaire: the lead's contact fields,
the answers, notes, consent flags. ``as_context()`` is the one read-only view that mapping
expressions and templates get (plain dicts, lists and strings: nothing with attributes to
escape through).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class ReportStatus(StrEnum):
    DRAFT = "draft"
    EXPORTED = "exported"
    CHECKED = "checked"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    DIVERSE = "diverse"
    UNKNOWN = "unknown"


LEAD_FIELDS: tuple[str, ...] = (
    "gender",
    "title",
    "first_name",
    "last_name",
    "company",
    "position",
    "department",
    "email",
    "phone",
    "mobile",
    "street",
    "zip",
    "city",
    "state",
    "country",  # ISO 3166-1 alpha-2
    "website",
    "language",  # BCP 47 primary tag, e.g. "de", "en"
)


@dataclass(frozen=True, slots=True)
class Lead:
    gender: Gender = Gender.UNKNOWN
    title: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    position: str = ""
    department: str = ""
    email: str = ""
    phone: str = ""
    mobile: str = ""
    street: str = ""
    zip: str = ""
    city: str = ""
    state: str = ""
    country: str = ""
    website: str = ""
    language: str = ""

    def as_context(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in LEAD_FIELDS}


@dataclass(frozen=True, slots=True)
class Consent:
    follow_up_email: bool = False
    marketing: bool = False


@dataclass(frozen=True, slots=True)
class Report:
    id: UUID
    organization_id: UUID
    event_id: UUID
    lead: Lead
    answers: dict[str, Any]  # question key -> str | number | bool | list[str]
    notes: str
    consent: Consent
    status: ReportStatus
    captured_by: UUID  # the reporter (a user)
    captured_at: datetime
    updated_at: datetime
    revision: int = 1  # grows with every change; "notify on every export" compares it
    reporter: dict[str, str] = field(default_factory=dict)  # name, email of the reporter

    def as_context(self) -> dict[str, Any]:
        """What expressions and templates see: ``lead``, ``answers``, ``notes``,
        ``reporter``, ``event_id``, ``status``, ``captured_at`` (ISO 8601)."""
        return {
            "id": str(self.id),
            "event_id": str(self.event_id),
            "status": self.status.value,
            "lead": self.lead.as_context(),
            "answers": dict(self.answers),
            "notes": self.notes,
            "consent": {
                "follow_up_email": self.consent.follow_up_email,
                "marketing": self.consent.marketing,
            },
            "reporter": dict(self.reporter),
            "captured_at": self.captured_at.isoformat(),
        }
