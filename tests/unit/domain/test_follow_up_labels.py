"""Follow-up template names beyond the mapping's: ``event``, ``questions``, answers with
labels (still equal to their keys), sample answers; and the no-scripts rule of the HTML
part, at save and at render."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.unit.domain.test_follow_up import report, spec
from visitmail.domain.errors import InvalidInput
from visitmail.domain.events import Event, EventStatus, Option, Question, QuestionType
from visitmail.domain.follow_up import checked_template, render_follow_up
from visitmail.domain.follow_up_context import LabeledAnswer, labeled_answers, sample_answers
from visitmail.domain.html_scripts import refuse_scripts

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
EVENT = Event(
    id=uuid.uuid4(),
    organization_id=uuid.uuid4(),
    name="Messe Berlin",
    languages=("de", "en"),
    questions=(
        Question(
            "interest",
            {"de": "Interesse", "en": "Interest"},
            QuestionType.SINGLE,
            (
                Option("pla", {"de": "Produktlinie A", "en": "Product line A"}),
                Option("plb", {"de": "B"}),
            ),
        ),
        Question("topics", {"de": "Themen"}, QuestionType.MULTI, (Option("x", {"de": "Iks"}),)),
        Question("notes2", {"de": "Notiz"}, QuestionType.TEXT),
        Question("size", {"de": "Größe"}, QuestionType.NUMBER),
        Question("call", {"de": "Rückruf"}, QuestionType.BOOL),
    ),
    status=EventStatus.LIVE,
    created_at=NOW,
    updated_at=NOW,
)


def test_choice_answers_are_labels_in_the_language_with_fallbacks_and_equal_their_keys() -> None:
    out = labeled_answers(
        {"interest": "plb", "topics": ["x", "gone"], "size": 3, "free": "t"}, EVENT, "en"
    )
    assert out["interest"] == "plb" and str(out["interest"]) == "B"  # en missing → default
    assert isinstance(out["interest"], LabeledAnswer) and out["interest"] == "B"
    assert out["interest"] != "pla"
    assert [str(v) for v in out["topics"]] == ["Iks", "gone"]  # a removed option: its key
    assert out["size"] == 3 and out["free"] == "t"


def test_sample_answers_cover_every_question() -> None:
    assert sample_answers(EVENT, "de") == {
        "interest": "pla",
        "topics": ["x"],
        "notes2": "(Notiz)",
        "size": 3,
        "call": True,
    }


def test_render_with_the_event_exposes_event_questions_and_labels() -> None:
    lead_report = replace(report(), answers={"interest": "pla"})
    template = spec(
        subject="{{ event.name }}",
        text="{{ questions.interest }}={{ answers.interest }}"
        "{% if answers.interest == 'pla' %} ok{% endif %}",
        html=None,
    )
    out = render_follow_up(checked_template(template), lead_report, "en", EVENT)
    assert (out.subject, out.text) == ("Messe Berlin", "Interest=Product line A ok")
    # without the event (older callers) the raw key renders, as before
    assert render_follow_up(template, lead_report, "en").text.startswith("=pla")


@pytest.mark.parametrize(
    "html",
    [
        "<script>x</script>",
        "< script>",
        '<a href="JavaScript:go()">',
        '<a href="java\tscript:go()">',
        '<a href="&#106;avascript:go()">',
        '<a href="vbscript:go()">',
        "<img src=x onerror=alert(1)>",
        '<svg/onload="x">',
        "<div\nonclick='x'>",
    ],
)
def test_scripts_are_refused_naming_html_at_save_and_at_render(html: str) -> None:
    with pytest.raises(InvalidInput) as saved:
        checked_template(spec(html=html))
    assert saved.value.field == "html"
    stored_before_the_rule = spec(html=html)  # never passed checked_template
    with pytest.raises(InvalidInput) as rendered:
        render_follow_up(stored_before_the_rule, report(), "de")
    assert rendered.value.field == "html"


@pytest.mark.parametrize(
    "html",
    [
        "<p>Our online store: https://shop.example</p>",
        "<p>Read the description of the new onboarding</p>",
        '<a href="https://x.example/?on=1">on=1</a>',
        "<p>one = two</p>",
    ],
)
def test_harmless_html_passes(html: str) -> None:
    refuse_scripts(html)
    assert checked_template(spec(html=html)).html == html
