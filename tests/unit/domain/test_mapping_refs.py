"""Unknown answers in a mapping are found at their path, against the covered events'
questions; what cannot be known is not reported."""

from __future__ import annotations

from typing import Any

import pytest

from visitmail.domain.mapping import MappingInvalid, Problem, parse_mapping
from visitmail.domain.mapping_refs import EventQuestions, answer_check, unknown_answers
from visitmail.domain.sandbox import field_references

FAIR = "6f1c2a9e-3b7d-4c1e-9a8f-2d5e7b9c0a11"
EXPO = "0b7d6c1e-2a3f-4e5d-8c9b-1a2b3c4d5e6f"
EVENTS = {
    FAIR: EventQuestions("Hannover Messe", ("region", "budget")),
    EXPO: EventQuestions("Expo", ("topics",)),
}


def email(**changes: Any) -> dict[str, Any]:
    fields = {"to": ["sales@acme.example"], "subject": "Lead", "body": "Hi"}
    fields.update(changes)
    return {"email": fields}


def rule(event: str = FAIR, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "R", "event": event, "on": "exported"}
    if "switch" not in fields and "actions" not in fields:
        base["actions"] = [email()]
    base.update(fields)
    return base


def problems(*rules: dict[str, Any], events: dict[str, EventQuestions] = EVENTS) -> list[Problem]:
    """What unknown_answers finds in the parsed mapping; parsing with answer_check finds
    the same, as MappingInvalid."""
    document = {"version": 1, "rules": list(rules)}
    found = unknown_answers(parse_mapping(document), events)
    if found:
        with pytest.raises(MappingInvalid) as caught:
            parse_mapping(document, sources=answer_check(events))
        assert list(caught.value.problems) == found
    else:
        parse_mapping(document, sources=answer_check(events))
    return found


def test_a_typo_in_a_condition_names_the_event_and_its_questions() -> None:
    assert problems(rule(when="answers.regoin == 'north' and lead.country == 'DE'")) == [
        Problem(
            "rules[0].when",
            'unknown answer "regoin" (did you mean "region"?) — the event "Hannover Messe" '
            "has region, budget",
        )
    ]


def test_known_answers_pass_in_every_form() -> None:
    assert (
        problems(
            rule(
                when="answers.region == 'north' or answers['budget'] > 5 "
                "or answers.get('region', 'x') or answers.items()",
                actions=[email(subject="{{ answers.budget }}", body="{{ answers['region'] }}")],
            )
        )
        == []
    )


def test_every_templated_field_of_every_action_is_checked_at_its_path() -> None:
    switch = {
        "value": "{{ answers.regio[:1] }}",
        "cases": [
            {
                "match": ["n"],
                "actions": [
                    email(to=["a@acme.example", "{{ answers.owner }}"], cc=["{{ answers.cc }}"])
                ],
            }
        ],
        "default": [email(reply_to="{{ answers.reply }}", html="<p>{{ answers.html }}</p>")],
    }
    found = problems(rule(switch=switch), rule(actions=[email(body="{{ answers.get('bdy') }}")]))
    assert [p.path for p in found] == [
        "rules[0].switch.value",
        "rules[0].switch.cases[0].actions[0].email.to[1]",
        "rules[0].switch.cases[0].actions[0].email.cc[0]",
        "rules[0].switch.default[0].email.reply_to",
        "rules[0].switch.default[0].email.html",
        "rules[1].actions[0].email.body",
    ]
    assert '"regio"' in found[0].message and 'did you mean "region"' in found[0].message


def test_every_event_is_checked_against_the_union_of_all_questions() -> None:
    assert problems(rule(event="*", when="answers.topics or answers.region")) == []
    (problem,) = problems(rule(event="*", when="answers.topic"))
    assert problem.path == "rules[0].when"
    assert "no event of the organization has it" in problem.message
    assert "region, budget, topics" in problem.message


def test_a_question_of_another_event_is_unknown_for_a_specific_rule() -> None:
    (problem,) = problems(rule(event=EXPO, when="answers.region == 'north'"))
    assert problem.message == 'unknown answer "region" — the event "Expo" has topics'


def test_an_event_without_questions_says_so() -> None:
    events = {FAIR: EventQuestions("Empty fair", ())}
    (problem,) = problems(rule(when="answers.x"), events=events)
    assert problem.message == 'unknown answer "x" — the event "Empty fair" has no questions'


def test_what_cannot_be_known_is_not_reported() -> None:
    other = "11111111-2222-4333-8444-555555555555"
    assert problems(rule(event=other, when="answers.anything")) == []
    assert problems(rule(event="*", when="answers.anything"), events={}) == []


def test_strings_and_comments_that_look_like_answers_do_not_count() -> None:
    body = "Write 'answers.nothing' {# answers.hidden #} {{ 'answers.quoted' }}"
    assert problems(rule(actions=[email(body=body)])) == []


def test_one_problem_per_key_and_field() -> None:
    found = problems(rule(when="answers.x == 1 or answers.x == 2 or answers.y"))
    assert [p.message.split(" — ")[0] for p in found] == [
        'unknown answer "x"',
        'unknown answer "y"',
    ]


@pytest.mark.parametrize(
    ("source", "expression", "keys"),
    [
        ("answers.a == 1 and answers['b']", True, ["a", "b"]),
        ("{{ answers.get('c') }}{{ answers.keys() }}", False, ["c"]),
        ("{% for k, v in answers.items() %}{{ k }}{% endfor %}", False, []),
        ("{{ lead.zip }}", False, []),
    ],
)
def test_field_references(source: str, expression: bool, keys: list[str]) -> None:
    assert [key for key, _ in field_references(source, "answers", expression=expression)] == keys


def test_parsing_with_the_check_lists_unknown_answers_with_every_other_problem() -> None:
    document = {
        "version": 1,
        "rules": [
            rule(when="answers.regoin", actions=[email(to=[])]),
            rule(on="sometimes", actions=[email(subject="{{ answers.budgt }}")]),
        ],
    }
    with pytest.raises(MappingInvalid) as caught:
        parse_mapping(document, sources=answer_check(EVENTS))
    assert [p.path for p in caught.value.problems] == [
        "rules[0].when",
        "rules[0].actions[0].email.to",
        "rules[1].on",
        "rules[1].actions[0].email.subject",
    ]
    assert caught.value.problems[3].message.startswith('unknown answer "budgt"')


def test_a_rule_with_an_invalid_event_is_not_checked_for_answers() -> None:
    document = {"version": 1, "rules": [rule(event="fair", when="answers.anything")]}
    with pytest.raises(MappingInvalid) as caught:
        parse_mapping(document, sources=answer_check(EVENTS))
    assert [p.path for p in caught.value.problems] == ["rules[0].event"]
