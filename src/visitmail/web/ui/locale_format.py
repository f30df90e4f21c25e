"""Values on a page in the viewer's language (Babel's CLDR data): numbers with the
language's separators, countries and languages by name, answers under their question's
label with options by their labels.

The viewer's language is the first tag of ``Accept-Language`` that Babel knows; the header
is read only up to :data:`MAX_HEADER` characters and :data:`MAX_TAGS` tags, so a long
header costs nothing. Unknown tags are skipped; nothing known means English.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal

from visitmail.domain.events import Event, QuestionType

MAX_HEADER = 200
MAX_TAGS = 6
DEFAULT = Locale("en")
# Words for booleans: CLDR has none. Other languages fall back to English.
_YES_NO = {
    "de": ("Ja", "Nein"),
    "en": ("Yes", "No"),
    "fr": ("Oui", "Non"),
    "es": ("Sí", "No"),
    "it": ("Sì", "No"),
    "nl": ("Ja", "Nee"),
    "pt": ("Sim", "Não"),
    "pl": ("Tak", "Nie"),
}


def viewer_locale(accept_language: str | None) -> Locale:
    """The first usable language of an ``Accept-Language`` header, by quality."""
    if not accept_language:
        return DEFAULT
    tags: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language[:MAX_HEADER].split(",")[:MAX_TAGS]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            tags.append((-quality, position, tag))
    for _, _, tag in sorted(tags):
        try:
            return Locale.parse(tag.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return DEFAULT


def number(value: int | float, locale: Locale) -> str:
    return format_decimal(value, locale=locale, decimal_quantization=False)


def country(code: str, locale: Locale) -> str:
    """``DE`` → ``Germany`` / ``Deutschland``; an unknown code as it is."""
    name = locale.territories.get(code.upper()) if code else None
    return str(name) if name else code


def language(tag: str, locale: Locale) -> str:
    """``fr`` → ``French`` / ``Französisch``; an unknown tag as it is."""
    primary = tag.replace("_", "-").split("-", 1)[0].lower()
    name = locale.languages.get(primary) if primary else None
    return str(name) if name else tag


def _label(labels: Mapping[str, str], locale: Locale, event: Event | None) -> str | None:
    if not labels:
        return None
    for tag in (str(locale), locale.language, event.default_language if event else None):
        if tag and labels.get(tag):
            return labels[tag]
        if tag:  # "de-AT" stored for a "de_AT" locale
            dashed = tag.replace("_", "-")
            if labels.get(dashed):
                return labels[dashed]
    return next(iter(labels.values()))


def _plain(value: Any, locale: Locale, yes_no: tuple[str, str]) -> str:
    if isinstance(value, bool):
        return yes_no[0] if value else yes_no[1]
    if isinstance(value, int | float):
        return number(value, locale)
    if isinstance(value, list):
        return ", ".join(_plain(v, locale, yes_no) for v in value)
    return str(value)


def answer_rows(
    event: Event | None, answers: Mapping[str, Any], locale: Locale
) -> list[tuple[str, str]]:
    """``(label, value)`` in questionnaire order, in the viewer's language (labels fall
    back to the event's default language, then any); options by their labels, numbers
    with the language's separators, booleans as words. Answers to questions the event no
    longer has come last, under their key."""
    yes_no = _YES_NO.get(locale.language, _YES_NO["en"])
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for question in event.questions if event is not None else ():
        if question.key not in answers:
            continue
        seen.add(question.key)
        value = answers[question.key]
        label = _label(question.label, locale, event) or question.key
        options = {o.key: _label(o.label, locale, event) or o.key for o in question.options}
        if question.type is QuestionType.SINGLE and isinstance(value, str):
            text = options.get(value, value)
        elif question.type is QuestionType.MULTI and isinstance(value, list):
            text = ", ".join(options.get(str(v), str(v)) for v in value)
        else:
            text = _plain(value, locale, yes_no)
        rows.append((label, text))
    rows += [(k, _plain(v, locale, yes_no)) for k, v in answers.items() if k not in seen]
    return rows
