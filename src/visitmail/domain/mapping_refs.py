"""Which answers a mapping reads, checked against the questions of the events its rules
cover (pure: no I/O).

A rule's ``when``, its switch ``value`` and every template of its emails (recipients,
``reply_to``, ``subject``, ``body``, ``html``) may read ``answers.<key>``,
``answers['<key>']`` or ``answers.get('<key>')``. :func:`unknown_answers` reports each key
that no question of the covered events has, as a :class:`~visitmail.domain.mapping.Problem`
at the field's path (``rules[0].when``), naming the event and the keys it does have:

* a rule for one event: that event's question keys;
* a rule for ``"*"``: the union of the keys of all the organization's events.

What cannot be known is not reported: a rule whose event is not among ``events`` (deleted,
or another organization's id), and ``"*"`` rules while the organization has no event at
all (a mapping prepared before the first event). Lead fields and other names are checked
by :func:`~visitmail.domain.mapping.parse_mapping` already.

This is a *save-time* check only. At send time an unknown answer stays what the sandbox
makes of it (empty in templates, false in conditions), so a stored mapping keeps working
after a question is renamed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from visitmail.domain.mapping import (
    ALL_EVENTS,
    Action,
    EmailAction,
    NotificationMapping,
    Problem,
    SourceCheck,
)
from visitmail.domain.sandbox import TemplateInvalid, field_references

MAX_LISTED_KEYS = 20  # keys named in one message; the rest are counted


@dataclass(frozen=True, slots=True)
class EventQuestions:
    """An event's name and its question keys (in the event's order)."""

    name: str
    keys: tuple[str, ...]


def _templates(action: Action, path: str) -> Iterator[tuple[str, str]]:
    """(path, template) of every templated field of an action."""
    if not isinstance(action, EmailAction):
        return
    base = f"{path}.email"
    for kind, entries in (("to", action.to), ("cc", action.cc), ("bcc", action.bcc)):
        for k, entry in enumerate(entries):
            yield f"{base}.{kind}[{k}]", entry
    if action.reply_to is not None:
        yield f"{base}.reply_to", action.reply_to
    yield f"{base}.subject", action.subject
    yield f"{base}.body", action.body
    if action.html is not None:
        yield f"{base}.html", action.html


def _sources(mapping: NotificationMapping, index: int) -> Iterator[tuple[str, str, bool]]:
    """(path, source, is_expression) of everything rule ``index`` renders or evaluates."""
    rule = mapping.rules[index]
    path = f"rules[{index}]"
    if rule.when is not None:
        yield f"{path}.when", rule.when, True
    for j, action in enumerate(rule.actions):
        for where, text in _templates(action, f"{path}.actions[{j}]"):
            yield where, text, False
    if rule.switch is not None:
        yield f"{path}.switch.value", rule.switch.value, False
        for c, case in enumerate(rule.switch.cases):
            for j, action in enumerate(case.actions):
                for where, text in _templates(action, f"{path}.switch.cases[{c}].actions[{j}]"):
                    yield where, text, False
        for j, action in enumerate(rule.switch.default):
            for where, text in _templates(action, f"{path}.switch.default[{j}]"):
                yield where, text, False


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return f"{shown} and {more} more" if more > 0 else shown


def _message(key: str, scope: str, keys: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, keys, n=1)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    if scope == ALL_EVENTS:
        have = (
            f"no event of the organization has it; their questions are {_listed(keys)}"
            if keys
            else "no event of the organization has any question"
        )
    else:
        have = (
            f"the event {scope} has {_listed(keys)}"
            if keys
            else f"the event {scope} has no questions"
        )
    return f'unknown answer "{key}"{hint} — {have}'


class _Scopes:
    """The answer keys each rule's ``event`` may read (see the module docstring)."""

    def __init__(self, events: Mapping[str, EventQuestions]) -> None:
        self.events = events
        every: list[str] = []
        for questions in events.values():
            every.extend(key for key in questions.keys if key not in every)
        self.every = tuple(every)

    def of(self, event: str | None) -> tuple[str, tuple[str, ...]] | None:
        """(how the message names the scope, its keys); ``None``: nothing to check."""
        if event is None:
            return None
        if event == ALL_EVENTS:
            return (ALL_EVENTS, self.every) if self.events else None
        found = self.events.get(event)
        return None if found is None else (f'"{found.name}"', found.keys)

    def messages(self, source: str, expression: bool, event: str | None) -> list[str]:
        scope = self.of(event)
        if scope is None:
            return []
        name, keys = scope
        try:
            read = field_references(source, "answers", expression=expression)
        except TemplateInvalid:  # reported by the template check itself
            return []
        known = set(keys)
        out: list[str] = []
        reported: set[str] = set()
        for key, _line in read:
            if key not in known and key not in reported:
                reported.add(key)
                out.append(_message(key, name, keys))
        return out


def answer_check(events: Mapping[str, EventQuestions]) -> SourceCheck:
    """The check :func:`~visitmail.domain.mapping.parse_mapping` runs on every template and
    expression (``sources=``), so that unknown answers are listed with every other problem
    of the document, at their paths. ``events``: as for :func:`unknown_answers`."""
    return _Scopes(events).messages


def unknown_answers(
    mapping: NotificationMapping, events: Mapping[str, EventQuestions]
) -> list[Problem]:
    """Every ``answers`` key the parsed ``mapping`` reads that the covered events' questions
    lack, in document order, one problem per key and field (what :func:`answer_check` finds
    while parsing, for a mapping parsed without it).

    ``events`` maps an event id (the canonical UUID string, as in
    :attr:`~visitmail.domain.mapping.Rule.event`) to its name and question keys: all the
    organization's events."""
    scopes = _Scopes(events)
    problems: list[Problem] = []
    for index, rule in enumerate(mapping.rules):
        for path, source, expression in _sources(mapping, index):
            for message in scopes.messages(source, expression, rule.event):
                problems.append(Problem(path, message))
    return problems
