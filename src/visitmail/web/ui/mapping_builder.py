"""What the mapping page's form builder (``static/mapping_builder.js``) needs to know,
as one JSON-able dict the template puts into a ``<script type="application/json">`` block
(the CSP allows no inline script): the organization's events with their questions (labels in
the event's default language, options with labels), the lead fields with human labels, the
placeholders templates may use, and the problems of the last save (path and message).

The builder edits the same document the JSON editor shows; nothing here validates: the
server validates the one submitted document (:mod:`visitmail.services.mapping`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from visitmail.domain.events import Event, Labels
from visitmail.domain.mapping import Problem
from visitmail.domain.reports import LEAD_FIELDS

LEAD_LABELS: dict[str, str] = {
    "gender": "Gender",
    "title": "Title (Dr., Prof.)",
    "first_name": "First name",
    "last_name": "Last name",
    "company": "Company",
    "position": "Position",
    "department": "Department",
    "email": "Email",
    "phone": "Phone",
    "mobile": "Mobile",
    "street": "Street",
    "zip": "Postcode",
    "city": "City",
    "state": "State / region",
    "country": "Country (2-letter code, DE)",
    "website": "Website",
    "language": "Language (de, en)",
}
"""A human label for every lead field (:data:`~visitmail.domain.reports.LEAD_FIELDS`)."""

assert set(LEAD_LABELS) == set(LEAD_FIELDS)  # a new lead field needs a label here

OTHER_PLACEHOLDERS: tuple[tuple[str, str], ...] = (
    ("{{ salutation }}", "Salutation (Dear Dr. Miller / Sehr geehrte Frau …)"),
    ("{{ reporter.name }}", "Reporter: name (who captured the lead)"),
    ("{{ reporter.email }}", "Reporter: email"),
    ("{{ notes }}", "Notes"),
    ("{{ captured_at|format_date('%d.%m.%Y') }}", "Captured on (date)"),
    ("{{ consent.follow_up_email }}", "Consent: follow-up email (True/False)"),
    ("{{ consent.marketing }}", "Consent: marketing (True/False)"),
    ("{{ status }}", "Report status (exported / checked)"),
    ("{{ trigger }}", "Trigger (exported / checked)"),
    ("{{ language }}", "Language of this email"),
)
"""Placeholders besides the lead fields and answers, as (template, label)."""


def _label(labels: Labels, languages: Sequence[str]) -> str:
    for language in languages:
        if labels.get(language):
            return labels[language]
    return next(iter(labels.values()), "")


def event_data(event: Event) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "name": event.name,
        "questions": [
            {
                "key": q.key,
                "label": _label(q.label, event.languages) or q.key,
                "type": q.type.value,
                "options": [
                    {"key": o.key, "label": _label(o.label, event.languages) or o.key}
                    for o in q.options
                ],
            }
            for q in event.questions
        ],
    }


def builder_data(events: Sequence[Event], problems: Sequence[Problem]) -> Mapping[str, Any]:
    """The builder's data block (see the module docstring)."""
    return {
        "events": [event_data(e) for e in events],
        "lead_fields": [{"key": key, "label": LEAD_LABELS[key]} for key in LEAD_FIELDS],
        "placeholders": [{"text": text, "label": label} for text, label in OTHER_PLACEHOLDERS],
        "problems": [{"path": p.path, "message": p.message} for p in problems],
    }
