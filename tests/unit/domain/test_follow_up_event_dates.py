"""``{{ event.dates }}``, ``{{ event.starts_on }}`` and ``{{ event.ends_on }}`` in follow-up
templates: the span written the way the template's language writes it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from tests.unit.domain.test_follow_up import report, spec
from tests.unit.domain.test_follow_up_labels import EVENT
from visitmail.domain.errors import InvalidInput
from visitmail.domain.follow_up import checked_template, render_follow_up
from visitmail.domain.follow_up_context import event_dates

DASH = "\u2013"  # CLDR writes spans with an en dash
FAIR = replace(EVENT, starts_on=date(2027, 5, 12), ends_on=date(2027, 5, 16))
TEMPLATE = spec(
    subject="{{ event.name }} {{ event.dates }}",
    text="Von {{ event.starts_on }} bis {{ event.ends_on }}; "
    "{{ event.starts_on|format_date('%d.%m.%Y') }}",
    html=None,
)


def test_event_dates_render_in_german_and_english() -> None:
    german = render_follow_up(checked_template(TEMPLATE), report(), "de", FAIR)
    assert german.subject == f"Messe Berlin 12.{DASH}16. Mai 2027"
    assert german.text == "Von 2027-05-12 bis 2027-05-16; 12.05.2027"
    english = render_follow_up(checked_template(TEMPLATE), report(), "en", FAIR)
    assert english.subject == f"Messe Berlin May 12 {DASH} 16, 2027"


def test_a_span_over_months_and_years_and_a_single_day() -> None:
    assert event_dates(date(2027, 5, 30), date(2027, 6, 2), "de") == f"30. Mai {DASH} 2. Juni 2027"
    # across a year CLDR abbreviates the months
    assert (
        event_dates(date(2027, 12, 30), date(2028, 1, 2), "en")
        == f"Dec 30, 2027 {DASH} Jan 2, 2028"
    )
    assert event_dates(date(2027, 5, 12), None, "de") == "12. Mai 2027"
    assert event_dates(date(2027, 5, 12), date(2027, 5, 12), "en") == "May 12, 2027"


def test_an_unknown_language_falls_back_to_the_default_then_english() -> None:
    assert event_dates(date(2027, 5, 12), None, "zz", "de") == "12. Mai 2027"
    assert event_dates(date(2027, 5, 12), None, "zz", "qq") == "May 12, 2027"


def test_an_event_without_dates_renders_empty_and_guards_a_sentence() -> None:
    template = spec(
        subject="x",
        text="[{{ event.dates }}|{{ event.starts_on }}]"
        "{% if event.dates %} on {{ event.dates }}{% endif %}",
        html=None,
    )
    out = render_follow_up(checked_template(template), report(), "de", EVENT)
    assert out.text == "[|]"


def test_an_unknown_event_field_is_refused_when_saved() -> None:
    with pytest.raises(InvalidInput) as exc:
        checked_template(spec(subject="{{ event.start }}", text="x", html=None))
    assert exc.value.field == "subject"
