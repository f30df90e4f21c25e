"""The "Insert placeholder" list of a follow-up template form (the event page): what a
follow-up template may say, grouped and labelled for people, in the template's language.
Every entry is a placeholder :data:`~visitmail.domain.follow_up.FOLLOW_UP_NAMES` allows,
so picking one never makes the template invalid."""

from __future__ import annotations

from visitmail.domain.events import Event, Labels
from visitmail.domain.reports import LEAD_FIELDS
from visitmail.web.ui.mapping_builder import LEAD_LABELS, OTHER_PLACEHOLDERS

Group = tuple[str, list[tuple[str, str]]]  # (heading, [(placeholder, label)])

# The mapping builder's own list, less what only a notification knows (trigger, status).
_GENERAL: tuple[tuple[str, str], ...] = tuple(
    (text, label)
    for text, label in OTHER_PLACEHOLDERS
    if text in {"{{ salutation }}", "{{ reporter.name }}", "{{ reporter.email }}", "{{ notes }}"}
)
_EVENT: tuple[tuple[str, str], ...] = (
    ("{{ event.name }}", "Event: name"),
    ("{{ event.dates }}", "Event: dates (May 12 - 16, 2027)"),
)


def _label(labels: Labels, language: str, fallback: str) -> str:
    return labels.get(language) or next(iter(labels.values()), "") or fallback


def placeholder_groups(event: Event, language: str) -> list[Group]:
    """The groups for ``event``'s template in ``language``: general, event, the lead's
    fields, and each question's answer (the option's label) and question text."""
    answers = [
        (f"{{{{ answers.{q.key} }}}}", f"Answer: {_label(q.label, language, q.key)}")
        for q in event.questions
    ] + [
        (f"{{{{ questions.{q.key} }}}}", f"Question text: {_label(q.label, language, q.key)}")
        for q in event.questions
    ]
    groups: list[Group] = [
        ("General", list(_GENERAL)),
        ("Event", list(_EVENT)),
        ("Lead", [(f"{{{{ lead.{key} }}}}", LEAD_LABELS[key]) for key in LEAD_FIELDS]),
    ]
    if answers:
        groups.append(("Answers", answers))
    return groups
