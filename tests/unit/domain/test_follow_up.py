"""Follow-up templates: validation at save, rendering for a report, the language choice,
the idempotency key, and the signed unsubscribe token."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from visitmail.domain.errors import InvalidInput
from visitmail.domain.follow_up import (
    FollowUpTemplateSpec,
    checked_template,
    choose_language,
    idempotency_key,
    render_follow_up,
    sign_unsubscribe,
    signed_by,
    verify_unsubscribe,
)
from visitmail.domain.identity import has_own_name
from visitmail.domain.reports import Consent, Gender, Lead, Report, ReportStatus
from visitmail.domain.sandbox import SandboxError, TemplateInvalid

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def report(**lead: object) -> Report:
    values: dict[str, object] = {
        "gender": Gender.FEMALE,
        "title": "Dr.",
        "first_name": "Anna",
        "last_name": "Müller",
        "company": "Müller GmbH",
        "email": "anna@example.de",
        "language": "de",
    }
    values.update(lead)
    return Report(
        id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        lead=Lead(**values),  # type: ignore[arg-type]
        answers={"interest": "CRM\r\nBcc: victim@example.org"},
        notes="Met at booth 4.\nWants a demo.",
        consent=Consent(follow_up_email=True),
        status=ReportStatus.EXPORTED,
        captured_by=uuid.uuid4(),
        captured_at=NOW,
        updated_at=NOW,
        reporter={"name": "Rita Reporter", "email": "rita@acme.example"},
    )


def spec(**changes: object) -> FollowUpTemplateSpec:
    values: dict[str, object] = {
        "subject": "Ihr Besuch bei uns, {{ lead.company }}",
        "text": "{{ salutation }},\n\ndanke! {{ reporter.name }}",
        "html": "<p>{{ salutation }}</p>",
    }
    values.update(changes)
    return FollowUpTemplateSpec(**values)  # type: ignore[arg-type]


def test_a_valid_template_is_kept_and_an_empty_html_is_none() -> None:
    valid = checked_template(spec(subject="  Hello  ", html="  "))
    assert valid.subject == "Hello"
    assert valid.html is None
    assert valid.reply_to_reporter is True and valid.bcc_reporter is False


@pytest.mark.parametrize(
    ("part", "source", "line"),
    [
        ("subject", "{{ ''.__class__.__mro__ }}", 1),
        ("text", "Hello\n{{ lead.__class__ }}", 2),
        ("text", "a\nb\n{{ self }}", 3),
        ("html", "<p>{% include 'x' %}</p>", 1),
        ("text", "{{ lead.fax }}", 1),
        ("text", "{{ unknown_name }}", 1),
        ("html", "{% for x in %}", 1),
        ("text", "{{ lead|attr('__class__') }}", 1),
    ],
)
def test_sandbox_escapes_and_mistakes_are_refused_at_save_naming_part_and_line(
    part: str, source: str, line: int
) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        checked_template(spec(**{part: source}))
    assert caught.value.field == part
    assert caught.value.line == line
    assert caught.value.message.startswith(f"line {line}:")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subject": ""}, "subject"),
        ({"subject": "a\nb"}, "subject"),
        ({"text": "  "}, "text"),
        ({"attachments": (uuid.UUID(int=1), uuid.UUID(int=1))}, "attachments[1]"),
        ({"attachments": tuple(uuid.UUID(int=i) for i in range(11))}, "attachments"),
    ],
)
def test_other_problems_name_their_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        checked_template(spec(**changes))
    assert caught.value.field == field


def test_rendering_uses_the_mapping_names_and_the_salutation_in_the_language() -> None:
    german = render_follow_up(spec(), report(), "de")
    assert german.subject == "Ihr Besuch bei uns, Müller GmbH"
    assert german.text.startswith("Sehr geehrte Frau Dr. Müller,")
    assert "Rita Reporter" in german.text
    english = render_follow_up(spec(), report(last_name="Miller"), "en")
    assert english.text.startswith("Dear Dr. Miller,")


def test_html_escapes_lead_values() -> None:
    rendered = render_follow_up(
        spec(html="<p>{{ lead.company }}</p>"), report(company="<script>x</script>"), "en"
    )
    assert rendered.html == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


@pytest.mark.parametrize("source", ["Re: {{ notes }}", "Re: {{ answers.interest }}"])
def test_a_subject_that_renders_a_line_break_is_refused(source: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        render_follow_up(spec(subject=source), report(), "de")
    assert caught.value.field == "subject"
    assert "line break" in caught.value.message


def test_run_time_sandbox_failures_name_the_part() -> None:
    with pytest.raises(SandboxError) as caught:
        render_follow_up(spec(text="{{ lead.company.__len__() }}"), report(), "de")
    assert caught.value.field == "text"


def test_language_choice() -> None:
    assert choose_language("de", ("de", "en"), "en") == "de"
    assert choose_language("fr", ("de", "en"), "en") == "en"
    assert choose_language("", ("de",), "de") == "de"
    assert choose_language(" DE ", ("de",), "en") == "de"


def test_idempotency_keys() -> None:
    r, t = uuid.UUID(int=1), uuid.UUID(int=2)
    assert idempotency_key(r, t, 1) == f"follow-up:{r}:{t}"
    assert idempotency_key(r, t, 3) == f"follow-up:{r}:{t}:3"


def test_unsubscribe_tokens_verify_and_resist_tampering() -> None:
    old, new = b"o" * 32, b"n" * 32
    org = uuid.uuid4()
    token = sign_unsubscribe([new, old], org, "Anna@Example.DE")
    assert verify_unsubscribe([new, old], token) == (org, "anna@example.de")
    assert verify_unsubscribe([b"x" * 32, new], token) == (org, "anna@example.de")
    assert verify_unsubscribe([old], token) is None  # the signing key is gone
    payload, mac = token.split(".")
    other = sign_unsubscribe([new], uuid.uuid4(), "anna@example.de").split(".")[0]
    for forged in (f"{other}.{mac}", f"{payload}.{mac[:-2]}AA", payload, "", "a.b.c", "!!.??"):
        assert verify_unsubscribe([new], forged) is None
    assert "/" not in token and "+" not in token and "=" not in token


@pytest.mark.parametrize(
    ("name", "email", "own"),
    [
        ("Rita Reporter", "rita@acme.example", True),
        ("rita", "rita@acme.example", False),  # the placeholder stored when none was given
        ("Rita", "rita@acme.example", True),  # typed by someone: kept
        ("  ", "rita@acme.example", False),
        ("", "", False),  # the reporter's user is gone
    ],
)
def test_a_name_of_ones_own_is_anything_but_the_placeholder(
    name: str, email: str, own: bool
) -> None:
    assert has_own_name(name, email) is own


def test_an_unnamed_reporter_signs_with_the_organizations_name() -> None:
    unnamed = replace(report(), reporter={"name": "rita", "email": "rita@acme.example"})
    signed = signed_by(unnamed, "Acme Fairs GmbH")
    assert signed.reporter == {"name": "Acme Fairs GmbH", "email": "rita@acme.example"}
    assert render_follow_up(spec(), signed, "de").text.endswith("danke! Acme Fairs GmbH")
    named = report()
    assert signed_by(named, "Acme Fairs GmbH") is named
