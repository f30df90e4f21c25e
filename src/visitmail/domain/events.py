"""Events: the questionnaire a visit report is captured with, and the rules of its media
library.

An event has a name, its languages (BCP 47 primary tags, the first is the default), its
questions, a status (``draft`` while being prepared, ``live`` once the app may capture
with it) and optional dates: ``starts_on`` and ``ends_on`` (calendar days, no time zone).
An end needs a start, is not before it, and both lie in the years
:data:`MIN_EVENT_YEAR`..:data:`MAX_EVENT_YEAR` (a typo such as 0202 or 20227 is refused,
naming the field); a start alone is a one-day event.

:func:`checked_spec` validates a whole definition and names the offending part by its path
(``questions[2].options[0].key``); :func:`checked_answers` validates a report's answers
against the questions (``answers.<key>``).

Media files are PDFs and images only, recognised by their first bytes (never by the name
or the client's content type), at most :data:`MAX_MEDIA_BYTES`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from visitmail.domain.errors import InvalidInput
from visitmail.domain.header_text import (
    has_unsafe_characters,
    header_safe,
    refuse_invalid_unicode,
)
from visitmail.domain.identity import clean_name

MAX_LANGUAGES = 20
MAX_QUESTIONS = 200
MAX_OPTIONS = 100
MAX_LABEL_LENGTH = 500
MAX_TEXT_ANSWER = 10_000
MIN_EVENT_YEAR = 2000
MAX_EVENT_YEAR = 2100
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


class EventStatus(StrEnum):
    DRAFT = "draft"
    LIVE = "live"


class QuestionType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    SINGLE = "single"  # one option key
    MULTI = "multi"  # a list of option keys
    BOOL = "bool"


Labels = Mapping[str, str]  # language -> text
AnswerValue = str | int | float | bool | list[str]


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    label: Labels


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    label: Labels
    type: QuestionType
    options: tuple[Option, ...] = ()

    def option_keys(self) -> tuple[str, ...]:
        return tuple(o.key for o in self.options)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What an event manager writes: everything but identity and timestamps."""

    name: str
    languages: tuple[str, ...]
    questions: tuple[Question, ...] = ()
    status: EventStatus = EventStatus.DRAFT
    starts_on: date | None = None
    ends_on: date | None = None


@dataclass(frozen=True, slots=True)
class Event:
    id: UUID
    organization_id: UUID
    name: str
    languages: tuple[str, ...]
    questions: tuple[Question, ...]
    status: EventStatus
    created_at: datetime
    updated_at: datetime
    starts_on: date | None = None
    ends_on: date | None = None

    @property
    def default_language(self) -> str:
        return self.languages[0]

    @property
    def spec(self) -> EventSpec:
        return EventSpec(
            self.name, self.languages, self.questions, self.status, self.starts_on, self.ends_on
        )

    def question(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)


def language_tag(value: str, *, field: str) -> str:
    """A BCP 47 primary language tag, lower-cased (``de``, ``en``, ``fil``)."""
    tag = value.strip().lower()
    if not _LANGUAGE.match(tag):
        raise InvalidInput("must be a language code such as 'de' or 'en'", field=field)
    return tag


def _key(value: str, *, field: str) -> str:
    if not _KEY.match(value):
        raise InvalidInput(
            "must start with a letter or _, then letters, digits or _ (at most 64)", field=field
        )
    return value


def _labels(labels: Labels, languages: Sequence[str], *, field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for language, text in labels.items():
        tag = language.strip().lower()
        if tag not in languages:
            raise InvalidInput("is not one of the event's languages", field=f"{field}.{language}")
        cleaned = text.strip()
        if not cleaned:
            raise InvalidInput("must not be empty", field=f"{field}.{language}")
        if len(cleaned) > MAX_LABEL_LENGTH:
            raise InvalidInput(
                f"must be at most {MAX_LABEL_LENGTH} characters", field=f"{field}.{language}"
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in cleaned):
            raise InvalidInput("must not contain control characters", field=f"{field}.{language}")
        out[tag] = cleaned
    if languages and languages[0] not in out:
        raise InvalidInput(f"needs a label in the default language '{languages[0]}'", field=field)
    return out


def _options(question: Question, languages: Sequence[str], *, field: str) -> tuple[Option, ...]:
    if question.type not in (QuestionType.SINGLE, QuestionType.MULTI):
        if question.options:
            raise InvalidInput("only single and multi questions have options", field=field)
        return ()
    if not question.options:
        raise InvalidInput("a single or multi question needs at least one option", field=field)
    if len(question.options) > MAX_OPTIONS:
        raise InvalidInput(f"at most {MAX_OPTIONS} options", field=field)
    seen: set[str] = set()
    out: list[Option] = []
    for j, option in enumerate(question.options):
        key = _key(option.key, field=f"{field}[{j}].key")
        if key in seen:
            raise InvalidInput(f"duplicate option key '{key}'", field=f"{field}[{j}].key")
        seen.add(key)
        out.append(Option(key, _labels(option.label, languages, field=f"{field}[{j}].label")))
    return tuple(out)


def _day(value: date | None, *, field: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # a datetime is a date too; only the day is meant
        value = value.date()
    if not MIN_EVENT_YEAR <= value.year <= MAX_EVENT_YEAR:
        raise InvalidInput(
            f"must be a date in the years {MIN_EVENT_YEAR} to {MAX_EVENT_YEAR}", field=field
        )
    return value


def checked_dates(starts_on: date | None, ends_on: date | None) -> tuple[date | None, date | None]:
    """The event's days, or :class:`InvalidInput` naming ``starts_on`` (out of range, or
    missing while an end is given) or ``ends_on`` (out of range, or before the start)."""
    start = _day(starts_on, field="starts_on")
    end = _day(ends_on, field="ends_on")
    if end is not None and start is None:
        raise InvalidInput("give the first day too (an end needs a start)", field="starts_on")
    if start is not None and end is not None and end < start:
        raise InvalidInput("must not be before the first day", field="ends_on")
    return start, end


def checked_spec(spec: EventSpec) -> EventSpec:
    """The definition with names stripped and language tags lower-cased, or
    :class:`InvalidInput` naming the first problem (``questions[2].options``)."""
    name = clean_name(spec.name, field="name")
    if not spec.languages:
        raise InvalidInput("at least one language is required", field="languages")
    if len(spec.languages) > MAX_LANGUAGES:
        raise InvalidInput(f"at most {MAX_LANGUAGES} languages", field="languages")
    languages: list[str] = []
    for i, value in enumerate(spec.languages):
        tag = language_tag(value, field=f"languages[{i}]")
        if tag in languages:
            raise InvalidInput(f"duplicate language '{tag}'", field=f"languages[{i}]")
        languages.append(tag)
    if len(spec.questions) > MAX_QUESTIONS:
        raise InvalidInput(f"at most {MAX_QUESTIONS} questions", field="questions")
    keys: set[str] = set()
    questions: list[Question] = []
    for i, question in enumerate(spec.questions):
        where = f"questions[{i}]"
        key = _key(question.key, field=f"{where}.key")
        if key in keys:
            raise InvalidInput(f"duplicate question key '{key}'", field=f"{where}.key")
        keys.add(key)
        label = _labels(question.label, languages, field=f"{where}.label")
        options = _options(question, languages, field=f"{where}.options")
        questions.append(Question(key, label, question.type, options))
    starts_on, ends_on = checked_dates(spec.starts_on, spec.ends_on)
    return EventSpec(
        name, tuple(languages), tuple(questions), EventStatus(spec.status), starts_on, ends_on
    )


# --- answers ------------------------------------------------------------------------------


def _answer(question: Question, value: object, *, field: str) -> AnswerValue:
    kind = question.type
    if kind is QuestionType.BOOL:
        if not isinstance(value, bool):
            raise InvalidInput("must be true or false", field=field)
        return value
    if kind is QuestionType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput("must be a number", field=field)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput("must be a finite number", field=field)
        return value
    if kind is QuestionType.TEXT:
        if not isinstance(value, str):
            raise InvalidInput("must be a string", field=field)
        if len(value) > MAX_TEXT_ANSWER:
            raise InvalidInput(f"must be at most {MAX_TEXT_ANSWER} characters", field=field)
        if "\x00" in value:
            raise InvalidInput("must not contain NUL characters", field=field)
        return value
    allowed = question.option_keys()
    if kind is QuestionType.SINGLE:
        if not isinstance(value, str):
            raise InvalidInput("must be one option key (a string)", field=field)
        if value not in allowed:
            raise InvalidInput(f"'{value[:64]}' is not an option of this question", field=field)
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("must be a list of option keys", field=field)
    chosen: list[str] = []
    for v in value:
        if v not in allowed:
            raise InvalidInput(f"'{v[:64]}' is not an option of this question", field=field)
        if v in chosen:
            raise InvalidInput(f"'{v}' is chosen twice", field=field)
        chosen.append(v)
    return chosen


def checked_answers(event: Event, answers: Mapping[str, object]) -> dict[str, AnswerValue]:
    """The answers in the event's question order, unanswered (``null``) ones dropped; or
    :class:`InvalidInput` naming ``answers.<key>``: an unknown question, a value of the
    wrong type, an unknown option."""
    for key in answers:
        if event.question(key) is None:
            raise InvalidInput("no such question in this event", field=f"answers.{key[:80]}")
    out: dict[str, AnswerValue] = {}
    for question in event.questions:
        value = answers.get(question.key)
        if value is not None:
            out[question.key] = _answer(question, value, field=f"answers.{question.key}")
    return out


# --- what reports answered (shown when questions change) ---------------------------------


@dataclass(slots=True)
class AnswerCounts:
    """How many reports answered each question (by key) and chose each option (by question
    key, then option key). Keys no longer in the event are counted too: stored answers
    outlive a changed questionnaire."""

    questions: dict[str, int] = field(default_factory=dict)
    options: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, answers: Mapping[str, object]) -> None:
        """Count one report's stored answers: every non-null answer counts for its
        question; a string (single choice) or each string of a list (multi choice) counts
        for that option."""
        for key, value in answers.items():
            if value is None:
                continue
            self.questions[key] = self.questions.get(key, 0) + 1
            chosen = value if isinstance(value, list) else [value]
            for option in {v for v in chosen if isinstance(v, str)}:
                per = self.options.setdefault(key, {})
                per[option] = per.get(option, 0) + 1


# --- the media library --------------------------------------------------------------------

MAX_MEDIA_BYTES = 10 * 1024 * 1024
MAX_FILENAME_LENGTH = 180
MAX_TITLE_LENGTH = 200

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
}


class MediaTooLarge(InvalidInput):
    """The upload exceeds :data:`MAX_MEDIA_BYTES`."""

    code = "too_large"


class UnsupportedMedia(InvalidInput):
    """The upload is neither a PDF nor a PNG, JPEG, GIF or WebP image."""

    code = "unsupported_media_type"


@dataclass(frozen=True, slots=True)
class MediaItem:
    """A media library entry's description; the bytes travel separately."""

    id: UUID
    organization_id: UUID
    event_id: UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    title: str | None
    created_at: datetime
    created_by: UUID | None = field(default=None)


def sniff_content_type(data: bytes) -> str:
    """The content type the bytes themselves declare, or :class:`UnsupportedMedia`."""
    for magic, content_type in _SIGNATURES:
        if data.startswith(magic):
            return content_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise UnsupportedMedia(
        "only PDF documents and PNG, JPEG, GIF or WebP images are accepted", field="file"
    )


def check_media_size(size: int) -> None:
    if size > MAX_MEDIA_BYTES:
        raise MediaTooLarge(f"the file exceeds {MAX_MEDIA_BYTES // (1024 * 1024)} MB", field="file")
    if size == 0:
        raise InvalidInput("the file is empty", field="file")


def clean_filename(value: str | None, content_type: str) -> str:
    """The uploaded name without any directory part, NFC-normalised, at most
    :data:`MAX_FILENAME_LENGTH` characters (the extension kept). CR, LF and NUL are refused
    (the name reaches ``Content-Disposition`` headers); other control characters become
    ``_`` (every character the header rule of :mod:`visitmail.domain.header_text` refuses,
    tab included). A missing name becomes ``upload`` with the type's extension."""
    raw = value or ""
    if any(ch in raw for ch in ("\r", "\n", "\x00")):
        raise InvalidInput("the file name must not contain line breaks or NUL", field="file")
    refuse_invalid_unicode(raw, field="file")
    name = unicodedata.normalize("NFC", re.split(r"[/\\]", raw)[-1]).strip()
    name = "".join("_" if ch == "\t" or has_unsafe_characters(ch) else ch for ch in name)
    name = name.lstrip(".") or ""
    if not name:
        return "upload" + EXTENSIONS.get(content_type, "")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_FILENAME_LENGTH - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_LENGTH]
    return name


def clean_title(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    title = value.strip()
    if len(title) > MAX_TITLE_LENGTH:
        raise InvalidInput(f"must be at most {MAX_TITLE_LENGTH} characters", field="title")
    return header_safe(title, field="title", allow_tab=False)
