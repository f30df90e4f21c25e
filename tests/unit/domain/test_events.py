"""Event definitions, answers, leads and media rules: validation names the path at fault."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from visitmail.domain.errors import InvalidInput
from visitmail.domain.events import (
    MAX_EVENT_YEAR,
    MAX_MEDIA_BYTES,
    MIN_EVENT_YEAR,
    AnswerCounts,
    Event,
    EventSpec,
    EventStatus,
    MediaTooLarge,
    Option,
    Question,
    QuestionType,
    UnsupportedMedia,
    check_media_size,
    checked_answers,
    checked_spec,
    clean_filename,
    sniff_content_type,
)
from visitmail.domain.reports import Gender, checked_lead

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def q(key: str, kind: QuestionType, *options: str, label: str = "Label") -> Question:
    return Question(key, {"de": label}, kind, tuple(Option(o, {"de": o.upper()}) for o in options))


def spec(*questions: Question, languages: tuple[str, ...] = ("de", "en")) -> EventSpec:
    return EventSpec("Fair 2026", languages, questions, EventStatus.LIVE)


def event(*questions: Question) -> Event:
    valid = checked_spec(spec(*questions))
    return Event(
        uuid.uuid4(),
        uuid.uuid4(),
        valid.name,
        valid.languages,
        valid.questions,
        valid.status,
        NOW,
        NOW,
    )


def field_of(exc: pytest.ExceptionInfo[InvalidInput]) -> str | None:
    return exc.value.field


def test_a_valid_spec_is_normalised() -> None:
    valid = checked_spec(
        EventSpec(
            "  Fair  ",
            ("DE", "en"),
            (Question("interest", {"DE": " Interesse ", "en": "Interest"}, QuestionType.TEXT),),
        )
    )
    assert valid.name == "Fair"
    assert valid.languages == ("de", "en")
    assert valid.questions[0].label == {"de": "Interesse", "en": "Interest"}
    assert valid.status is EventStatus.DRAFT


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        (EventSpec("", ("de",)), "name"),
        (EventSpec("x", ()), "languages"),
        (EventSpec("x", ("de", "deutsch")), "languages[1]"),
        (EventSpec("x", ("de", "DE")), "languages[1]"),
        (
            spec(q("a", QuestionType.TEXT), q("b", QuestionType.TEXT), q("c", QuestionType.SINGLE)),
            "questions[2].options",
        ),
        (spec(q("a", QuestionType.TEXT, "x")), "questions[0].options"),
        (spec(q("a", QuestionType.TEXT), q("a", QuestionType.BOOL)), "questions[1].key"),
        (spec(q("1abc", QuestionType.TEXT)), "questions[0].key"),
        (spec(q("a b", QuestionType.TEXT)), "questions[0].key"),
        (spec(q("a", QuestionType.MULTI, "x", "x")), "questions[0].options[1].key"),
        (spec(q("a", QuestionType.SINGLE, "ok", "not ok")), "questions[0].options[1].key"),
        (spec(Question("a", {"en": "only english"}, QuestionType.TEXT)), "questions[0].label"),
        (spec(Question("a", {"de": "x", "fr": "y"}, QuestionType.TEXT)), "questions[0].label.fr"),
        (spec(Question("a", {"de": "  "}, QuestionType.TEXT)), "questions[0].label.de"),
        (spec(Question("a", {"de": "a\nb"}, QuestionType.TEXT)), "questions[0].label.de"),
        (
            spec(Question("a", {"de": "x"}, QuestionType.SINGLE, (Option("o", {"en": "O"}),))),
            "questions[0].options[0].label",
        ),
    ],
)
def test_invalid_specs_name_the_path(bad: EventSpec, path: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        checked_spec(bad)
    assert field_of(exc) == path


def test_answers_are_checked_against_the_questions() -> None:
    ev = event(
        q("note", QuestionType.TEXT),
        q("budget", QuestionType.NUMBER),
        q("size", QuestionType.SINGLE, "s", "m", "l"),
        q("topics", QuestionType.MULTI, "mail", "crm"),
        q("call", QuestionType.BOOL),
    )
    answers = checked_answers(
        ev,
        {"call": True, "topics": ["crm", "mail"], "size": "m", "budget": 1.5, "note": "hi\nyou"},
    )
    assert list(answers) == ["note", "budget", "size", "topics", "call"]  # question order
    assert checked_answers(ev, {"note": None}) == {}


@pytest.mark.parametrize(
    ("answers", "path"),
    [
        ({"nope": "x"}, "answers.nope"),
        ({"note": 3}, "answers.note"),
        ({"note": "a\x00b"}, "answers.note"),
        ({"budget": "3"}, "answers.budget"),
        ({"budget": True}, "answers.budget"),
        ({"budget": float("nan")}, "answers.budget"),
        ({"size": "xl"}, "answers.size"),
        ({"size": ["s"]}, "answers.size"),
        ({"topics": "crm"}, "answers.topics"),
        ({"topics": ["crm", "fax"]}, "answers.topics"),
        ({"topics": ["crm", "crm"]}, "answers.topics"),
        ({"call": "yes"}, "answers.call"),
    ],
)
def test_wrong_answers_name_the_question(answers: dict[str, object], path: str) -> None:
    ev = event(
        q("note", QuestionType.TEXT),
        q("budget", QuestionType.NUMBER),
        q("size", QuestionType.SINGLE, "s", "m", "l"),
        q("topics", QuestionType.MULTI, "mail", "crm"),
        q("call", QuestionType.BOOL),
    )
    with pytest.raises(InvalidInput) as exc:
        checked_answers(ev, answers)
    assert field_of(exc) == path


def test_lead_is_normalised() -> None:
    lead = checked_lead(
        {"gender": "female", "email": " Ann@Example.COM ", "country": "de", "language": "DE"}
    )
    assert lead.gender is Gender.FEMALE
    assert lead.email == "ann@example.com"
    assert lead.country == "DE"
    assert lead.language == "de"
    assert checked_lead({}).gender is Gender.UNKNOWN


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"email": "not an address"}, "lead.email"),
        ({"country": "XX"}, "lead.country"),
        ({"country": "DEU"}, "lead.country"),
        ({"language": "german"}, "lead.language"),
        ({"last_name": "Evil\r\nBcc: x@y.z"}, "lead.last_name"),
        ({"company": "ACME\n"}, "lead.company"),
        ({"city": "a\x00"}, "lead.city"),
        ({"gender": "robot"}, "lead.gender"),
        ({"first_name": "x" * 201}, "lead.first_name"),
        ({"nickname": "x"}, "lead.nickname"),
    ],
)
def test_bad_lead_fields_are_named(values: dict[str, str], path: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        checked_lead(values)
    assert field_of(exc) == path


@pytest.mark.parametrize(
    ("head", "content_type"),
    [
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0..JFIF", "image/jpeg"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
    ],
)
def test_media_type_comes_from_the_bytes(head: bytes, content_type: str) -> None:
    assert sniff_content_type(head) == content_type


@pytest.mark.parametrize(
    "head", [b"<html><script>", b"PK\x03\x04", b"MZ\x90\x00", b"RIFF\x00\x00\x00\x00WAVE", b""]
)
def test_other_media_is_refused(head: bytes) -> None:
    with pytest.raises(UnsupportedMedia) as exc:
        sniff_content_type(head)
    assert exc.value.field == "file"


def test_media_size_limit() -> None:
    check_media_size(MAX_MEDIA_BYTES)
    with pytest.raises(MediaTooLarge):
        check_media_size(MAX_MEDIA_BYTES + 1)
    with pytest.raises(InvalidInput):
        check_media_size(0)


def test_filenames_lose_paths_and_keep_extensions() -> None:
    assert clean_filename("../../etc/passwd", "application/pdf") == "passwd"
    assert clean_filename("C:\\Users\\ann\\Brochure.pdf", "application/pdf") == "Brochure.pdf"
    assert clean_filename(None, "image/png") == "upload.png"
    assert clean_filename("...", "application/pdf") == "upload.pdf"
    assert clean_filename("a\tb.pdf", "application/pdf") == "a_b.pdf"
    long = clean_filename("x" * 500 + ".pdf", "application/pdf")
    assert len(long) == 180 and long.endswith(".pdf")
    for bad in ("a\r\nb.pdf", "a\nb.pdf", "a\x00.pdf"):
        with pytest.raises(InvalidInput) as exc:
            clean_filename(bad, "application/pdf")
        assert exc.value.field == "file"


# --- dates --------------------------------------------------------------------------------


def dated(starts_on: date | None, ends_on: date | None) -> EventSpec:
    return EventSpec("Fair", ("de",), starts_on=starts_on, ends_on=ends_on)


def test_dates_are_optional_and_a_start_alone_is_one_day() -> None:
    assert checked_spec(dated(None, None)).starts_on is None
    one = checked_spec(dated(date(2027, 5, 12), None))
    assert (one.starts_on, one.ends_on) == (date(2027, 5, 12), None)
    span = checked_spec(dated(date(2027, 5, 12), date(2027, 5, 16)))
    assert (span.starts_on, span.ends_on) == (date(2027, 5, 12), date(2027, 5, 16))
    same = checked_spec(dated(date(2027, 5, 12), date(2027, 5, 12)))
    assert same.ends_on == date(2027, 5, 12)


def test_a_datetime_counts_as_its_day() -> None:
    valid = checked_spec(dated(datetime(2027, 5, 12, 23, 30, tzinfo=UTC), None))
    assert valid.starts_on == date(2027, 5, 12)
    assert not isinstance(valid.starts_on, datetime)


@pytest.mark.parametrize(
    ("starts_on", "ends_on", "field"),
    [
        (date(2027, 5, 16), date(2027, 5, 12), "ends_on"),
        (None, date(2027, 5, 12), "starts_on"),
        (date(MIN_EVENT_YEAR - 1, 12, 31), None, "starts_on"),
        (date(2027, 5, 12), date(MAX_EVENT_YEAR + 1, 1, 1), "ends_on"),
        (date(202, 5, 12), date(2027, 5, 12), "starts_on"),
    ],
)
def test_bad_dates_name_their_field(
    starts_on: date | None, ends_on: date | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        checked_spec(dated(starts_on, ends_on))
    assert field_of(exc) == field


def test_the_year_bounds_themselves_are_accepted() -> None:
    valid = checked_spec(dated(date(MIN_EVENT_YEAR, 1, 1), date(MAX_EVENT_YEAR, 12, 31)))
    assert valid.ends_on == date(MAX_EVENT_YEAR, 12, 31)


def test_an_events_spec_carries_its_dates() -> None:
    valid = checked_spec(dated(date(2027, 5, 12), date(2027, 5, 16)))
    made = Event(
        uuid.uuid4(),
        uuid.uuid4(),
        valid.name,
        valid.languages,
        (),
        valid.status,
        NOW,
        NOW,
        valid.starts_on,
        valid.ends_on,
    )
    assert made.spec == valid


def test_answer_counts_count_questions_and_chosen_options() -> None:
    counts = AnswerCounts()
    counts.add({"size": "small", "topics": ["a", "b", "a"], "note": None, "n": 3})
    counts.add({"size": "large", "topics": ["a"], "gone": True})
    assert counts.questions == {"size": 2, "topics": 2, "n": 1, "gone": 1}  # null: unanswered
    assert counts.options["size"] == {"small": 1, "large": 1}
    assert counts.options["topics"] == {"a": 2, "b": 1}  # a report counts once per option
    assert "n" not in counts.options and "gone" not in counts.options
