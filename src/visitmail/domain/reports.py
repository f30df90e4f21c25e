"""Visit reports and their leads, as the mapping and the templates see them.

A report is captured in the app with an event's questionnaire: the lead's contact fields,
the answers, notes, consent flags. ``as_context()`` is the one read-only view that mapping
expressions and templates get (plain dicts, lists and strings: nothing with attributes to
escape through).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from visitmail.domain.addresses import normalize_email
from visitmail.domain.errors import InvalidInput
from visitmail.domain.header_text import header_safe


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
    exported_at: datetime | None = None  # the latest export
    checked_at: datetime | None = None  # the latest check

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


# --- validating a lead (issue 5) ----------------------------------------------------------

MAX_LEAD_FIELD_LENGTH = 200
_LONG_LEAD_FIELDS = {"street": 300, "website": 500, "company": 300}
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}$")

# ISO 3166-1 alpha-2, officially assigned codes.
_ISO_ALPHA2 = """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE
    DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN
    GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE
    KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
    ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA
    PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK
    SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
    UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"""
ISO_COUNTRIES: frozenset[str] = frozenset(_ISO_ALPHA2.split())


def checked_lead(values: Mapping[str, str]) -> Lead:
    """A :class:`Lead` from its fields (any of :data:`LEAD_FIELDS`; missing ones are empty,
    ``gender`` is ``unknown`` when missing or empty), or :class:`InvalidInput` naming
    ``lead.<field>``.

    Every field may reach a mail header, so CR, LF and NUL are refused everywhere. Values
    are stripped and bounded; ``email`` (when given) is validated and normalized,
    ``country`` is an ISO 3166-1 alpha-2 code (upper-cased), ``language`` a BCP 47
    primary tag (lower-cased)."""
    out: dict[str, str] = {}
    for name in LEAD_FIELDS:
        if name == "gender":
            continue
        where = f"lead.{name}"
        raw = values.get(name, "")
        value = header_safe(raw, field=where, allow_tab=False).strip()
        limit = _LONG_LEAD_FIELDS.get(name, MAX_LEAD_FIELD_LENGTH)
        if len(value) > limit:
            raise InvalidInput(f"must be at most {limit} characters", field=where)
        if value and name == "email":
            value = normalize_email(value, field=where)
        elif value and name == "country":
            value = value.upper()
            if value not in ISO_COUNTRIES:
                raise InvalidInput("must be an ISO 3166-1 alpha-2 code such as 'DE'", field=where)
        elif value and name == "language":
            value = value.lower()
            if not _LANGUAGE_TAG.match(value):
                raise InvalidInput("must be a language code such as 'de' or 'en'", field=where)
        out[name] = value
    unknown = set(values) - set(LEAD_FIELDS)
    if unknown:
        raise InvalidInput("is not a known lead field", field=f"lead.{sorted(unknown)[0]}")
    try:
        gender = Gender(values.get("gender") or Gender.UNKNOWN.value)
    except ValueError:
        choices = ", ".join(g.value for g in Gender)
        raise InvalidInput(f"must be one of {choices}", field="lead.gender") from None
    return Lead(gender=gender, **out)
