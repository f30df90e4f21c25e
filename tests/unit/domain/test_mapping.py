"""The mapping document: a valid one parses; an invalid one reports every problem, with paths."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from visitmail.domain.errors import InvalidInput
from visitmail.domain.mapping import (
    ALL_EVENTS,
    MAX_ACTIONS,
    MAX_RULES,
    EmailAction,
    MappingInvalid,
    NotificationMapping,
    Problem,
    Trigger,
    WebhookAction,
    parse_mapping,
)

EVENT = "6f1c2a9e-3b7d-4c1e-9a8f-2d5e7b9c0a11"

BODY_DE = """Neuer Lead von {{ reporter.name }}:

{{ lead.first_name }} {{ lead.last_name }}, {{ lead.company }}
{{ lead.zip }} {{ lead.city }}
Anrede: {{ salutation }}
Erfasst am {{ captured_at|format_date('%d.%m.%Y') }}
{% if answers.products %}Interesse: {{ answers.products|join(', ') }}{% endif %}

Notizen: {{ notes|default('-') }}"""

BODY_EN = """New lead from {{ reporter.name }}: {{ lead.first_name }} {{ lead.last_name }}
({{ lead.company }}, {{ lead.zip }} {{ lead.city }}, {{ lead.country }})."""

EXAMPLE: dict[str, Any] = {
    "version": 1,
    "rules": [
        {
            "name": "Regional teams",
            "description": "Route every exported lead by the first digit of its postcode.",
            "event": "*",
            "on": "exported",
            "switch": {
                "value": "{{ lead.zip[:1] }}",
                "cases": [
                    {
                        "match": ["1"],
                        "actions": [
                            {
                                "email": {
                                    "to": ["berlin@acme.example"],
                                    "cc_reporter": True,
                                    "language": "de",
                                    "subject": "Neuer Lead: {{ lead.company }} ({{ lead.city }})",
                                    "body": BODY_DE,
                                    "html": "<p>Neuer Lead: <b>{{ lead.company }}</b></p>",
                                    "attach_pdf": True,
                                }
                            }
                        ],
                    },
                    {
                        "match": ["8", "9"],
                        "actions": [
                            {
                                "email": {
                                    "to": ["bavaria@acme.example", "{{ reporter.email }}"],
                                    "reply_to": "{{ reporter.email }}",
                                    "language": "de",
                                    "subject": "Neuer Lead: {{ lead.company }} ({{ lead.city }})",
                                    "body": BODY_DE,
                                    "attach_pdf": True,
                                }
                            }
                        ],
                    },
                ],
                "default": [
                    {
                        "email": {
                            "to": ["sales@acme.example"],
                            "bcc": ["archive@acme.example"],
                            "subject": "New lead: {{ lead.company }}",
                            "body": BODY_EN,
                        }
                    }
                ],
            },
        },
        {
            "name": "Big fish",
            "event": EVENT,
            "on": "checked",
            "when": "answers.budget == 'high' and lead.country == 'DE'",
            "notify_every_export": True,
            "actions": [
                {"webhook": {"url": "https://crm.example/hooks/visitmail", "secret_ref": "crm"}},
                {
                    "email": {
                        "to": ["key-accounts@acme.example"],
                        "subject": "Big fish: {{ lead.company }}",
                        "body": BODY_EN,
                    }
                },
            ],
        },
    ],
}


def problems_of(doc: object) -> list[Problem]:
    with pytest.raises(MappingInvalid) as caught:
        parse_mapping(doc)
    return list(caught.value.problems)


def paths_of(doc: object) -> list[str]:
    return [problem.path for problem in problems_of(doc)]


def rule(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "r",
        "event": "*",
        "on": "exported",
        "actions": [{"email": {"to": ["a@acme.example"], "subject": "s", "body": "b"}}],
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def doc_with(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "rules": list(rules)}


# --- valid -------------------------------------------------------------------------


def test_the_example_parses_into_the_model() -> None:
    mapping = parse_mapping(json.loads(json.dumps(EXAMPLE)))
    assert isinstance(mapping, NotificationMapping)
    regional, big_fish = mapping.rules
    assert regional.event == ALL_EVENTS and regional.on is Trigger.EXPORTED
    assert regional.switch is not None and regional.when is None and regional.actions == ()
    assert regional.switch.value == "{{ lead.zip[:1] }}"
    assert [case.match for case in regional.switch.cases] == [("1",), ("8", "9")]
    berlin = regional.switch.cases[0].actions[0]
    assert isinstance(berlin, EmailAction)
    assert berlin.to == ("berlin@acme.example",)
    assert berlin.attach_pdf and berlin.cc_reporter and berlin.language == "de"
    assert berlin.html is not None
    bavaria = regional.switch.cases[1].actions[0]
    assert isinstance(bavaria, EmailAction)
    assert bavaria.to == ("bavaria@acme.example", "{{ reporter.email }}")
    assert bavaria.reply_to == "{{ reporter.email }}"
    default = regional.switch.default[0]
    assert isinstance(default, EmailAction) and default.bcc == ("archive@acme.example",)

    assert big_fish.event == EVENT and big_fish.on is Trigger.CHECKED
    assert big_fish.when == "answers.budget == 'high' and lead.country == 'DE'"
    assert big_fish.notify_every_export and big_fish.switch is None
    hook, mail = big_fish.actions
    assert hook == WebhookAction(url="https://crm.example/hooks/visitmail", secret_ref="crm")
    assert isinstance(mail, EmailAction)


def test_defaults_and_normalization() -> None:
    mapping = parse_mapping(
        doc_with(
            rule(
                event=EVENT.upper(),
                actions=[{"email": {"to": ["Team@ACME.Example"], "subject": "s", "body": "b"}}],
            )
        )
    )
    (only,) = mapping.rules
    assert only.event == EVENT
    assert only.enabled and not only.notify_every_export and only.description == ""
    action = only.actions[0]
    assert isinstance(action, EmailAction)
    assert action.to == ("team@acme.example",)
    assert (action.cc, action.bcc, action.reply_to, action.html, action.language) == (
        (),
        (),
        None,
        None,
        None,
    )
    assert not action.attach_pdf and not action.cc_reporter


def test_an_empty_rule_list_is_valid() -> None:
    assert parse_mapping({"version": 1, "rules": []}).rules == ()


def test_http_is_allowed_for_loopback_receivers_only_with_allow_http() -> None:
    hook = {"url": "http://127.0.0.1:8765/hook", "secret_ref": "local", "allow_http": True}
    mapping = parse_mapping(doc_with(rule(actions=[{"webhook": hook}])))
    action = mapping.rules[0].actions[0]
    assert isinstance(action, WebhookAction) and action.allow_http
    for host in ("localhost", "[::1]"):
        parse_mapping(doc_with(rule(actions=[{"webhook": {**hook, "url": f"http://{host}/h"}}])))


def test_applies_to() -> None:
    mapping = parse_mapping(EXAMPLE)
    regional, big_fish = mapping.rules
    assert regional.applies_to("any-event", "exported")
    assert not regional.applies_to("any-event", Trigger.CHECKED)
    assert big_fish.applies_to(EVENT, Trigger.CHECKED)
    assert not big_fish.applies_to("00000000-0000-0000-0000-000000000000", Trigger.CHECKED)


# --- invalid: every problem, with its path -------------------------------------------


def test_an_invalid_document_reports_every_problem_with_its_path() -> None:
    doc: dict[str, Any] = {
        "version": 1,
        "extra": True,
        "rules": [
            # 0: no "on"; an unknown key inside an email
            {
                "name": "no trigger",
                "event": "*",
                "actions": [
                    {"email": {"to": ["a@acme.example"], "subject": "s", "body": "b", "foo": 1}}
                ],
            },
            # 1: both when and switch; a duplicate match value
            {
                "name": "both",
                "event": "*",
                "on": "exported",
                "when": "lead.country == 'DE'",
                "switch": {
                    "value": "{{ lead.zip[:1] }}",
                    "cases": [
                        {"match": ["1"], "actions": []},
                        {"match": ["1", "2"], "actions": []},
                    ],
                },
            },
            # 2: a bad address in "to"; a template syntax error (line 3) in the body
            {
                "name": "bad email",
                "event": "*",
                "on": "checked",
                "actions": [
                    {
                        "email": {
                            "to": ["not an address", "ok@acme.example"],
                            "subject": "Lead {{ lead.company }",
                            "body": "one\ntwo\n{% if lead.zip %}open",
                        }
                    }
                ],
            },
            # 3: a webhook with a wrong scheme; allow_http for a public host
            {
                "name": "bad hook",
                "event": "*",
                "on": "checked",
                "actions": [
                    {"webhook": {"url": "ftp://crm.example/hook", "secret_ref": "crm"}},
                    {
                        "webhook": {
                            "url": "http://crm.example/hook",
                            "secret_ref": "crm",
                            "allow_http": True,
                        }
                    },
                ],
            },
        ],
    }
    problems = problems_of(doc)
    found = {problem.path: problem.message for problem in problems}
    assert [problem.path for problem in problems] == [
        "extra",
        "rules[0].on",
        "rules[0].actions[0].email.foo",
        "rules[1].switch.cases[1].match[0]",
        "rules[1].switch",
        "rules[2].actions[0].email.to[0]",
        "rules[2].actions[0].email.subject",
        "rules[2].actions[0].email.body",
        "rules[3].actions[0].webhook.url",
        "rules[3].actions[1].webhook.url",
        "rules[3].actions[1].webhook.allow_http",
    ]
    assert found["extra"].startswith("unknown key")
    assert found["rules[0].on"] == "is required"
    assert found["rules[0].actions[0].email.foo"].startswith("unknown key")
    assert "already matched by cases[0]" in found["rules[1].switch.cases[1].match[0]"]
    assert "cannot be combined with 'when'" in found["rules[1].switch"]
    assert "not a valid email address" in found["rules[2].actions[0].email.to[0]"]
    assert found["rules[2].actions[0].email.subject"].startswith("line 1: syntax error")
    assert found["rules[2].actions[0].email.body"].startswith("line 3: syntax error")
    assert "https://" in found["rules[3].actions[0].webhook.url"]
    assert "localhost" in found["rules[3].actions[1].webhook.allow_http"]


def test_the_error_is_invalid_input_naming_the_first_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_mapping(doc_with(rule(on="sometimes"), rule(event="nope")))
    error = caught.value
    assert isinstance(error, MappingInvalid)
    assert error.code == "mapping_invalid"
    assert error.field == "rules[0].on"
    assert "2 problems" in error.message
    assert [p.path for p in error.problems] == ["rules[0].on", "rules[1].event"]
    path, message = error.problems[0]  # problems are (path, message) pairs
    assert (path, message) == ("rules[0].on", "must be one of: exported, checked")


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        ([], "", "must be an object"),
        ({"rules": []}, "version", "is required"),
        ({"version": 2, "rules": []}, "version", "must be 1"),
        ({"version": True, "rules": []}, "version", "must be 1"),
        ({"version": 1, "rules": {}}, "rules", "must be a list"),
        ({"version": 1}, "rules", "is required"),
        (doc_with("rule"), "rules[0]", "must be an object"),  # type: ignore[arg-type]
        (doc_with(rule(name="")), "rules[0].name", "must not be empty"),
        (doc_with(rule(name="a\nb")), "rules[0].name", "single line"),
        (doc_with(rule(event=None)), "rules[0].event", "is required"),
        (doc_with(rule(event="berlin")), "rules[0].event", "UUID"),
        (doc_with(rule(on="sent")), "rules[0].on", "exported, checked"),
        (doc_with(rule(enabled="yes")), "rules[0].enabled", "true or false"),
        (doc_with(rule(notify_every_export=1)), "rules[0].notify_every_export", "true or false"),
        (doc_with(rule(actions=None)), "rules[0].actions", "or a 'switch'"),
        (doc_with(rule(actions=[])), "rules[0].actions", "must not be empty"),
        (doc_with(rule(when="lead.zip ==")), "rules[0].when", "line 1: syntax error"),
        (doc_with(rule(when="leed.zip == '1'")), "rules[0].when", "unknown name 'leed'"),
        (doc_with(rule(when="''.__class__")), "rules[0].when", "not available"),
        (
            doc_with(rule(switch={"value": "{{ lead.zip }}", "cases": []})),
            "rules[0].switch",
            "cannot be combined with 'actions'",
        ),
        (doc_with(rule(actions=[{}])), "rules[0].actions[0]", "exactly one of"),
        (
            doc_with(rule(actions=[{"sms": {}}])),
            "rules[0].actions[0].sms",
            "unknown key",
        ),
        (
            doc_with(rule(actions=[{"email": {"to": [], "subject": "s", "body": "b"}}])),
            "rules[0].actions[0].email.to",
            "must not be empty",
        ),
        (
            doc_with(rule(actions=[{"email": {"to": ["a@acme.example"], "body": "b"}}])),
            "rules[0].actions[0].email.subject",
            "is required",
        ),
        (
            doc_with(
                rule(
                    actions=[{"email": {"to": ["a@acme.example"], "subject": "a\nb", "body": "b"}}]
                )
            ),
            "rules[0].actions[0].email.subject",
            "single line",
        ),
        (
            doc_with(
                rule(
                    actions=[
                        {"email": {"to": ["a@x.example"], "subject": "{{ lead.fax }}", "body": "b"}}
                    ]
                )
            ),
            "rules[0].actions[0].email.subject",
            "lead has no field 'fax'",
        ),
        (
            doc_with(
                rule(
                    actions=[
                        {"email": {"to": ["a@x.example"], "subject": "s", "body": "{{ self }}"}}
                    ]
                )
            ),
            "rules[0].actions[0].email.body",
            "'self' is not available",
        ),
        (
            doc_with(
                rule(
                    actions=[
                        {
                            "email": {
                                "to": ["a@x.example"],
                                "cc": ["a@x.example\r\nBcc: evil@x.example"],
                                "subject": "s",
                                "body": "b",
                            }
                        }
                    ]
                )
            ),
            "rules[0].actions[0].email.cc[0]",
            "line breaks",
        ),
        (
            doc_with(
                rule(
                    actions=[
                        {
                            "email": {
                                "to": ["a@x.example"],
                                "subject": "s",
                                "body": "b",
                                "language": "German",
                            }
                        }
                    ]
                )
            ),
            "rules[0].actions[0].email.language",
            "language tag",
        ),
        (
            doc_with(
                rule(
                    actions=[
                        {
                            "email": {
                                "to": ["a@x.example"],
                                "subject": "s",
                                "body": "b",
                                "attach_pdf": "yes",
                            }
                        }
                    ]
                )
            ),
            "rules[0].actions[0].email.attach_pdf",
            "true or false",
        ),
        (
            doc_with(rule(actions=[{"webhook": {"url": "https://x.example/h"}}])),
            "rules[0].actions[0].webhook.secret_ref",
            "is required",
        ),
        (
            doc_with(
                rule(actions=[{"webhook": {"url": "https://x.example/h", "secret_ref": "a b"}}])
            ),
            "rules[0].actions[0].webhook.secret_ref",
            "stored secret",
        ),
        (
            doc_with(rule(actions=[{"webhook": {"url": "http://x.example/h", "secret_ref": "s"}}])),
            "rules[0].actions[0].webhook.url",
            "https://",
        ),
        (
            doc_with(rule(actions=[{"webhook": {"url": "http://localhost/h", "secret_ref": "s"}}])),
            "rules[0].actions[0].webhook.url",
            "allow_http",
        ),
        (
            doc_with(
                rule(
                    actions=[{"webhook": {"url": "https://user:pw@x.example/h", "secret_ref": "s"}}]
                )
            ),
            "rules[0].actions[0].webhook.url",
            "user or password",
        ),
        (
            doc_with(rule(actions=[{"webhook": {"url": "https:///h", "secret_ref": "s"}}])),
            "rules[0].actions[0].webhook.url",
            "host",
        ),
        (
            doc_with(
                rule(actions=[{"webhook": {"url": "https://x.example:99999/", "secret_ref": "s"}}])
            ),
            "rules[0].actions[0].webhook.url",
            "not a valid URL",
        ),
        (
            doc_with(
                rule(
                    actions=None,
                    switch={
                        "value": "{{ lead.zip[:1] }}",
                        "cases": [{"match": [1], "actions": []}],
                    },
                )
            ),
            "rules[0].switch.cases[0].match[0]",
            "must be a string",
        ),
        (
            doc_with(rule(actions=None, switch={"value": "{{ lead.zip[:1] }}", "cases": []})),
            "rules[0].switch.cases",
            "must not be empty",
        ),
        (
            doc_with(
                rule(actions=None, switch={"cases": [{"match": ["1"], "actions": []}]}),
            ),
            "rules[0].switch.value",
            "is required",
        ),
        (
            doc_with(
                rule(
                    actions=None,
                    switch={"value": "{{ lead.zip }}", "cases": [{"match": ["1"]}], "else": []},
                )
            ),
            "rules[0].switch.cases[0].actions",
            "is required",
        ),
    ],
)
def test_single_problems(doc: object, path: str, fragment: str) -> None:
    problems = problems_of(doc)
    assert path in [p.path for p in problems], problems
    message = next(p.message for p in problems if p.path == path)
    assert fragment in message, message


def test_unknown_switch_key_is_reported_along_with_the_rest() -> None:
    doc = doc_with(
        rule(
            actions=None,
            switch={"value": "{{ lead.zip }}", "cases": [{"match": ["1"]}], "else": []},
        )
    )
    assert paths_of(doc) == ["rules[0].switch.else", "rules[0].switch.cases[0].actions"]


def test_too_many_rules() -> None:
    doc = doc_with(*[rule(name=f"r{i}") for i in range(MAX_RULES + 1)])
    problems = problems_of(doc)
    assert problems == [Problem("rules", f"must have at most {MAX_RULES} entries, not 201")]


def test_too_many_actions() -> None:
    action = {"email": {"to": ["a@acme.example"], "subject": "s", "body": "b"}}
    doc = doc_with(rule(actions=[action] * (MAX_ACTIONS + 1)))
    assert paths_of(doc) == ["rules[0].actions"]


def test_template_size_limits() -> None:
    email = {"to": ["a@acme.example"], "subject": "x" * 1001, "body": "y" * 70_000}
    problems = problems_of(doc_with(rule(actions=[{"email": email}])))
    assert [p.path for p in problems] == [
        "rules[0].actions[0].email.subject",
        "rules[0].actions[0].email.body",
    ]
    assert all("at most" in p.message for p in problems)


def test_problems_in_many_rules_do_not_stop_at_the_first() -> None:
    doc = doc_with(*[rule(name=f"r{i}", on="never") for i in range(5)])
    assert paths_of(doc) == [f"rules[{i}].on" for i in range(5)]


def test_the_example_is_not_modified_by_parsing() -> None:
    before = copy.deepcopy(EXAMPLE)
    parse_mapping(EXAMPLE)
    assert before == EXAMPLE
