"""Which actions a report fires: the postcode switch, triggers, events, rendering, failures."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from tests.unit.domain.test_mapping import EVENT, EXAMPLE
from visitmail.domain.errors import InvalidInput
from visitmail.domain.mapping import (
    TEMPLATE_NAMES,
    EmailAction,
    NotificationMapping,
    Rule,
    Trigger,
    parse_mapping,
)
from visitmail.domain.mapping_eval import (
    PlanFailed,
    PlannedAction,
    PlannedEmail,
    PlannedWebhook,
    fire,
    template_context,
)
from visitmail.domain.reports import Consent, Gender, Lead, Report, ReportStatus

OTHER_EVENT = UUID("11111111-2222-4333-8444-555555555555")
REPORT_ID = UUID("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
AT = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


def report(
    zip_code: str = "10115",
    *,
    event_id: UUID = UUID(EVENT),
    revision: int = 1,
    **lead_fields: Any,
) -> Report:
    fields: dict[str, Any] = {
        "gender": Gender.FEMALE,
        "title": "Dr.",
        "first_name": "Anna",
        "last_name": "Müller",
        "company": "Acme Sensorik GmbH",
        "zip": zip_code,
        "city": "Berlin",
        "country": "DE",
        "language": "de",
    }
    fields.update(lead_fields)
    return Report(
        id=REPORT_ID,
        organization_id=UUID("99999999-9999-4999-8999-999999999999"),
        event_id=event_id,
        lead=Lead(**fields),
        answers={"budget": "high", "products": ["Sensors", "Valves"]},
        notes="Wants a quote by Friday.",
        consent=Consent(follow_up_email=True),
        status=ReportStatus.EXPORTED,
        captured_by=UUID("77777777-7777-4777-8777-777777777777"),
        captured_at=AT,
        updated_at=AT,
        revision=revision,
        reporter={"name": "Rita Reporter", "email": "Rita@Acme.Example"},
    )


MAPPING = parse_mapping(EXAMPLE)


def emails(planned: list[PlannedAction]) -> list[PlannedEmail]:
    assert all(isinstance(p, PlannedEmail) for p in planned), planned
    return [p for p in planned if isinstance(p, PlannedEmail)]


def only_email(planned: list[PlannedAction]) -> PlannedEmail:
    (email,) = emails(planned)
    return email


# --- the postcode switch -----------------------------------------------------------


def test_a_berlin_lead_goes_to_the_berlin_team() -> None:
    email = only_email(fire(MAPPING, report("10115"), Trigger.EXPORTED))
    assert email.to == ("berlin@acme.example",)
    assert email.cc == ("rita@acme.example",)  # cc_reporter
    assert email.attach_pdf
    assert email.rule_index == 0 and email.rule_name == "Regional teams"
    assert email.path == "rules[0].switch.cases[0].actions[0]"


def test_a_munich_lead_goes_to_bavaria() -> None:
    email = only_email(fire(MAPPING, report("80331", city="München"), Trigger.EXPORTED))
    assert email.to == ("bavaria@acme.example", "rita@acme.example")  # a template entry
    assert email.reply_to == "rita@acme.example"
    assert email.path == "rules[0].switch.cases[1].actions[0]"
    assert email.subject == "Neuer Lead: Acme Sensorik GmbH (München)"


def test_other_postcodes_go_to_the_default() -> None:
    for zip_code in ("50667", "", " "):
        email = only_email(fire(MAPPING, report(zip_code), Trigger.EXPORTED))
        assert email.to == ("sales@acme.example",)
        assert email.bcc == ("archive@acme.example",)
        assert email.path == "rules[0].switch.default[0]"


def test_matching_ignores_case_and_surrounding_whitespace() -> None:
    mapping = parse_mapping(
        {
            "version": 1,
            "rules": [
                {
                    "name": "by country",
                    "event": "*",
                    "on": "exported",
                    "switch": {
                        "value": "{{ lead.country }}",
                        "cases": [
                            {
                                "match": [" de ", "AT"],
                                "actions": [
                                    {
                                        "email": {
                                            "to": ["dach@a.example"],
                                            "subject": "s",
                                            "body": "b",
                                        }
                                    }
                                ],
                            }
                        ],
                    },
                }
            ],
        }
    )
    assert only_email(fire(mapping, report(country="De"), "exported")).to == ("dach@a.example",)
    assert fire(mapping, report(country="FR"), "exported") == []  # no case, no default


# --- triggers and events -----------------------------------------------------------


def test_checked_rules_do_not_fire_on_export() -> None:
    planned = fire(MAPPING, report("10115"), Trigger.EXPORTED)
    assert {p.rule_name for p in planned} == {"Regional teams"}


def test_checked_rules_fire_on_check() -> None:
    planned = fire(MAPPING, report("10115"), Trigger.CHECKED)
    assert [p.rule_name for p in planned] == ["Big fish", "Big fish"]
    hook, email = planned
    assert isinstance(hook, PlannedWebhook) and isinstance(email, PlannedEmail)
    assert email.to == ("key-accounts@acme.example",)


def test_event_specific_rules_do_not_fire_for_other_events() -> None:
    assert fire(MAPPING, report("10115", event_id=OTHER_EVENT), Trigger.CHECKED) == []
    # the "*" rule fires for any event
    assert len(fire(MAPPING, report("10115", event_id=OTHER_EVENT), Trigger.EXPORTED)) == 1


def test_when_must_be_truthy() -> None:
    assert fire(MAPPING, report("10115", country="AT"), Trigger.CHECKED) == []


def test_disabled_rules_do_not_fire() -> None:
    rules = tuple(dataclasses.replace(r, enabled=False) for r in MAPPING.rules)
    assert fire(NotificationMapping(1, rules), report(), Trigger.EXPORTED) == []


def test_rules_fire_in_order() -> None:
    doc = json.loads(json.dumps(EXAMPLE))
    doc["rules"][1]["on"] = "exported"
    planned = fire(parse_mapping(doc), report(), Trigger.EXPORTED)
    assert [(p.rule_index, p.path) for p in planned] == [
        (0, "rules[0].switch.cases[0].actions[0]"),
        (1, "rules[1].actions[0]"),
        (1, "rules[1].actions[1]"),
    ]


def test_an_unknown_trigger_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        fire(MAPPING, report(), "deleted")
    assert caught.value.field == "trigger"


# --- rendering -----------------------------------------------------------------------


def test_placeholders_are_rendered() -> None:
    email = only_email(fire(MAPPING, report("10115"), Trigger.EXPORTED))
    assert email.language == "de"
    assert email.subject == "Neuer Lead: Acme Sensorik GmbH (Berlin)"
    assert "Neuer Lead von Rita Reporter:" in email.text
    assert "Anna Müller, Acme Sensorik GmbH" in email.text
    assert "10115 Berlin" in email.text
    assert "Anrede: Sehr geehrte Frau Dr. Müller" in email.text
    assert "Erfasst am 25.11.2026" in email.text
    assert "Interesse: Sensors, Valves" in email.text
    assert "Notizen: Wants a quote by Friday." in email.text
    assert email.html == "<p>Neuer Lead: <b>Acme Sensorik GmbH</b></p>"


def test_html_escapes_lead_values() -> None:
    email = only_email(fire(MAPPING, report("10115", company="<script>x</script>"), "exported"))
    assert email.html == "<p>Neuer Lead: <b>&lt;script&gt;x&lt;/script&gt;</b></p>"
    assert email.subject == "Neuer Lead: <script>x</script> (Berlin)"  # text stays text


def test_language_is_the_actions_else_the_leads_else_the_default() -> None:
    action = EmailAction(to=("a@acme.example",), subject="{{ language }}", body="{{ salutation }}")
    rule = Rule(name="r", event="*", on=Trigger.EXPORTED, actions=(action,))
    mapping = NotificationMapping(1, (rule,))
    english = only_email(fire(mapping, report(language="en"), "exported"))
    assert (english.language, english.subject, english.text) == ("en", "en", "Dear Dr. Müller")
    default = only_email(fire(mapping, report(language=""), "exported", default_language="de"))
    assert (default.language, default.text) == ("de", "Sehr geehrte Frau Dr. Müller")
    forced = dataclasses.replace(action, language="fr")
    french = only_email(
        fire(
            NotificationMapping(1, (dataclasses.replace(rule, actions=(forced,)),)),
            report(),
            "exported",
        )
    )
    assert (french.language, french.text) == ("fr", "Bonjour Madame Müller")


def test_the_context_has_exactly_the_documented_names() -> None:
    assert set(template_context(report(), Trigger.EXPORTED, "de")) == TEMPLATE_NAMES


def test_recipients_are_deduplicated_across_to_cc_and_bcc() -> None:
    action = EmailAction(
        to=("a@acme.example", "{{ reporter.email }}", "A@ACME.example"),
        cc=("rita@acme.example", "b@acme.example"),
        bcc=("b@acme.example", "c@acme.example"),
        cc_reporter=True,
        subject="s",
        body="b",
    )
    rule = Rule(name="r", event="*", on=Trigger.EXPORTED, actions=(action,))
    email = only_email(fire(NotificationMapping(1, (rule,)), report(), "exported"))
    assert email.to == ("a@acme.example", "rita@acme.example")
    assert email.cc == ("b@acme.example",)
    assert email.bcc == ("c@acme.example",)


def test_a_template_may_yield_several_addresses() -> None:
    action = EmailAction(to=("{{ answers.team }}",), subject="s", body="b")
    rule = Rule(name="r", event="*", on=Trigger.EXPORTED, actions=(action,))
    lead_report = dataclasses.replace(report(), answers={"team": "x@acme.example; y@acme.example"})
    email = only_email(fire(NotificationMapping(1, (rule,)), lead_report, "exported"))
    assert email.to == ("x@acme.example", "y@acme.example")


def test_webhook_payload_is_the_report_as_json() -> None:
    hook, _ = fire(MAPPING, report(), Trigger.CHECKED)
    assert isinstance(hook, PlannedWebhook)
    assert hook.url == "https://crm.example/hooks/visitmail"
    assert hook.secret_ref == "crm"
    assert hook.path == "rules[1].actions[0]"
    payload = json.loads(json.dumps(hook.payload))
    assert payload["type"] == "report.checked"
    assert payload["rule"] == {"index": 1, "name": "Big fish"}
    assert payload["report"]["id"] == str(REPORT_ID)
    assert payload["report"]["lead"]["zip"] == "10115"
    assert payload["report"]["answers"]["products"] == ["Sensors", "Valves"]
    assert payload["report"]["revision"] == 1


# --- idempotency keys -------------------------------------------------------------------


def test_idempotency_keys_name_report_rule_trigger_and_action() -> None:
    email = only_email(fire(MAPPING, report("10115"), Trigger.EXPORTED))
    assert email.idempotency_key == (
        f"report:{REPORT_ID}:rule:0:exported:switch.cases[0].actions[0]"
    )
    again = only_email(fire(MAPPING, report("10115", revision=2), Trigger.EXPORTED))
    assert again.idempotency_key == email.idempotency_key  # same report, no re-notification


def test_notify_every_export_adds_the_revision() -> None:
    first = fire(MAPPING, report(revision=1), Trigger.CHECKED)
    second = fire(MAPPING, report(revision=2), Trigger.CHECKED)
    assert [p.idempotency_key for p in first] == [
        f"report:{REPORT_ID}:rule:1:checked:actions[0]:rev:1",
        f"report:{REPORT_ID}:rule:1:checked:actions[1]:rev:1",
    ]
    assert [p.idempotency_key for p in second] == [
        f"report:{REPORT_ID}:rule:1:checked:actions[0]:rev:2",
        f"report:{REPORT_ID}:rule:1:checked:actions[1]:rev:2",
    ]


# --- failures stay with their action ------------------------------------------------------


def test_crlf_from_a_lead_field_in_the_subject_is_refused_for_that_action() -> None:
    doc = json.loads(json.dumps(EXAMPLE))
    doc["rules"][1]["on"] = "exported"  # a second rule that must still be planned
    doc["rules"][1]["actions"][1]["email"]["subject"] = "Big fish in {{ lead.zip }}"
    evil = report("10115", company="Acme\r\nBcc: victim@example.com")
    planned = fire(parse_mapping(doc), evil, Trigger.EXPORTED)
    failed, hook, email = planned
    assert isinstance(failed, PlanFailed)
    assert failed.path == "rules[0].switch.cases[0].actions[0]"
    assert failed.rule_index == 0 and failed.rule_name == "Regional teams"
    assert (
        failed.idempotency_key == f"report:{REPORT_ID}:rule:0:exported:switch.cases[0].actions[0]"
    )
    assert [p.path for p in failed.problems] == [
        "rules[0].switch.cases[0].actions[0].email.subject"
    ]
    assert "line break" in failed.problems[0].message
    assert isinstance(hook, PlannedWebhook)
    assert isinstance(email, PlannedEmail)
    assert "\n" not in email.subject and "\r" not in email.subject


def test_a_recipient_template_yielding_an_invalid_address_fails_that_action() -> None:
    bad = dataclasses.replace(report("80331"), reporter={"name": "R", "email": "not-an-address"})
    (failed,) = fire(MAPPING, bad, Trigger.EXPORTED)
    assert isinstance(failed, PlanFailed)
    assert [p.path for p in failed.problems] == [
        "rules[0].switch.cases[1].actions[0].email.to[1]",
        "rules[0].switch.cases[1].actions[0].email.reply_to",
    ]
    assert "'not-an-address'" in failed.problems[0].message
    assert "not a valid email address" in failed.message


def test_a_recipient_template_yielding_crlf_fails_that_action() -> None:
    bad = dataclasses.replace(
        report("80331"), reporter={"name": "R", "email": "r@acme.example\nBcc: x@evil.example"}
    )
    (failed,) = fire(MAPPING, bad, Trigger.EXPORTED)
    assert isinstance(failed, PlanFailed)
    assert failed.problems[0].path == "rules[0].switch.cases[1].actions[0].email.to[1]"
    assert "line break" in failed.problems[0].message


def test_empty_recipients_are_reported() -> None:
    action = EmailAction(to=("{{ reporter.email }}",), subject="s", body="b")
    rule = Rule(name="r", event="*", on=Trigger.EXPORTED, actions=(action,))
    nobody = dataclasses.replace(report(), reporter={})
    (failed,) = fire(NotificationMapping(1, (rule,)), nobody, "exported")
    assert isinstance(failed, PlanFailed)
    assert [p.path for p in failed.problems] == ["rules[0].actions[0].email.to"]


def test_a_failing_when_fails_only_its_rule() -> None:
    broken = Rule(name="broken", event="*", on=Trigger.EXPORTED, when="lead.zip / 0", actions=())
    fine = Rule(
        name="fine",
        event="*",
        on=Trigger.EXPORTED,
        actions=(EmailAction(to=("a@acme.example",), subject="s", body="b"),),
    )
    failed, planned = fire(NotificationMapping(1, (broken, fine)), report(), "exported")
    assert isinstance(failed, PlanFailed)
    assert failed.path == "rules[0].when" and failed.idempotency_key is None
    assert isinstance(planned, PlannedEmail) and planned.rule_name == "fine"


def test_a_failing_body_is_reported_with_its_path_and_line() -> None:
    action = EmailAction(to=("a@acme.example",), subject="s", body="ok\n{{ lead.zip + 1 }}")
    rule = Rule(name="r", event="*", on=Trigger.EXPORTED, actions=(action,))
    (failed,) = fire(NotificationMapping(1, (rule,)), report(), "exported")
    assert isinstance(failed, PlanFailed)
    (problem,) = failed.problems
    assert problem.path == "rules[0].actions[0].email.body"
    assert problem.message.startswith("line 2:")


def test_sandbox_escapes_in_a_hand_built_mapping_fail_harmlessly() -> None:
    action = EmailAction(to=("a@acme.example",), subject="s", body="{{ ''.__class__.__mro__ }}")
    rule = Rule(name="r", event="*", on=Trigger.EXPORTED, actions=(action,))
    (failed,) = fire(NotificationMapping(1, (rule,)), report(), "exported")
    assert isinstance(failed, PlanFailed)
    assert "not available" in failed.message
