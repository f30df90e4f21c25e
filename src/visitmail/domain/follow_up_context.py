"""What follow-up templates see beyond the mapping's names: the ``event`` and the answers
with their labels in the template's language (pure: no I/O).

Contract:

* ``event``: ``{{ event.name }}``, ``{{ event.languages }}``, ``{{ event.id }}`` and the
  event's days: ``{{ event.starts_on }}`` / ``{{ event.ends_on }}`` as ISO dates
  (``2027-05-12``, usable with ``format_date``) and ``{{ event.dates }}``, the span written
  the way the template's language writes it (Babel's CLDR data: ``12.-16. Mai 2027``,
  ``May 12 - 16, 2027`` with an en dash; one day without an end). An event without dates gives empty
  strings, so ``{% if event.dates %}`` guards a sentence. A language Babel does not know
  writes the dates in the event's default language, else in English.
* ``answers``: a single-choice answer is a :class:`LabeledAnswer` — a ``str`` that *is* the
  option's label (``{{ answers.interest }}`` → ``Product line A``) but compares equal to
  the option key as well, so templates written against the raw keys
  (``{% if answers.interest == 'pla' %}``, ``'pla' in answers.topics``) keep working.
  A multi-choice answer is a list of them; text, number and yes/no answers are unchanged.
* ``questions``: the question labels by key (``{{ questions.interest }}`` → ``Interest``).

Labels fall back to the event's default language, then to the key itself."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_interval, format_skeleton

from visitmail.domain.events import Event, Labels, Question, QuestionType

_SPACES = {0x2009: " ", 0x202F: " ", 0x00A0: " "}
_DATE_SKELETON = "yMMMMd"  # day, month by name, year: "12. Mai 2027", "May 12, 2027"


class LabeledAnswer(str):
    """An option's label that also equals its key (backwards compatibility)."""

    __slots__ = ("key",)
    key: str

    def __new__(cls, label: str, key: str) -> LabeledAnswer:
        made = super().__new__(cls, label)
        made.key = key
        return made

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other) is True or other == self.key

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return str.__hash__(self)


def label_in(labels: Labels, language: str, default: str, fallback: str) -> str:
    """The label in ``language``, else in ``default``, else ``fallback``."""
    return labels.get(language) or labels.get(default) or fallback


def _option(question: Question, key: object, language: str, default: str) -> object:
    if not isinstance(key, str):
        return key
    for option in question.options:
        if option.key == key:
            return LabeledAnswer(label_in(option.label, language, default, key), key)
    return key  # an option removed since the report was captured: the raw key


def labeled_answers(answers: Mapping[str, Any], event: Event, language: str) -> dict[str, Any]:
    """``answers`` with choice answers replaced by :class:`LabeledAnswer` values."""
    by_key = {q.key: q for q in event.questions}
    out: dict[str, Any] = {}
    for key, value in answers.items():
        question = by_key.get(key)
        if question is not None and question.type is QuestionType.SINGLE:
            out[key] = _option(question, value, language, event.default_language)
        elif (
            question is not None
            and question.type is QuestionType.MULTI
            and isinstance(value, list | tuple)
        ):
            out[key] = [_option(question, v, language, event.default_language) for v in value]
        else:
            out[key] = value
    return out


def _locale(*languages: str) -> Locale:
    for language in languages:
        try:
            return Locale.parse(language.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            continue
    return Locale("en")


def event_dates(
    starts_on: date | None, ends_on: date | None, language: str, default: str = "en"
) -> str:
    """The event's days in ``language`` (``12.-16. Mai 2027``, with an en dash); one day
    when there is no end or it is the start; empty without a start."""
    if starts_on is None:
        return ""
    locale = _locale(language, default)
    if ends_on is None or ends_on == starts_on:
        text = str(format_skeleton(_DATE_SKELETON, starts_on, locale=locale))
    else:
        text = str(format_interval(starts_on, ends_on, _DATE_SKELETON, locale=locale))
    # CLDR puts thin and narrow no-break spaces around the dash; plain spaces read the same
    # in every mail client and keep subjects simple ASCII-spaced text.
    return text.translate(_SPACES)


def event_context(event: Event, language: str) -> dict[str, Any]:
    """The ``event`` and ``questions`` names of a follow-up template."""
    return {
        "event": {
            "id": str(event.id),
            "name": event.name,
            "languages": list(event.languages),
            "starts_on": event.starts_on.isoformat() if event.starts_on else "",
            "ends_on": event.ends_on.isoformat() if event.ends_on else "",
            "dates": event_dates(event.starts_on, event.ends_on, language, event.default_language),
        },
        "questions": {
            q.key: label_in(q.label, language, event.default_language, q.key)
            for q in event.questions
        },
    }


EVENT_FIELDS = ("id", "name", "languages", "starts_on", "ends_on", "dates")


def sample_answers(event: Event, language: str) -> dict[str, Any]:
    """Raw answers for a preview's sample lead, one per question of ``event``: the first
    option (the first two for multi-choice), a number, yes, or the question's label as
    a text answer."""
    out: dict[str, Any] = {}
    for q in event.questions:
        if q.type is QuestionType.SINGLE and q.options:
            out[q.key] = q.options[0].key
        elif q.type is QuestionType.MULTI and q.options:
            out[q.key] = [o.key for o in q.options[:2]]
        elif q.type is QuestionType.NUMBER:
            out[q.key] = 3
        elif q.type is QuestionType.BOOL:
            out[q.key] = True
        elif q.type is QuestionType.TEXT:
            out[q.key] = f"({label_in(q.label, language, event.default_language, q.key)})"
    return out
