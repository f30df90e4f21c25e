"""Which actions a report fires under a notification mapping, rendered (pure: no I/O).

:func:`fire` is what an export, a check and a dry run all call. It walks the rules in
order; a rule applies when it is enabled, its ``event`` is ``"*"`` or the report's event,
its ``on`` is the trigger, and its ``when`` is truthy (or its switch picks a case or the
default). Every action of an applying rule becomes one entry of the result:

* :class:`PlannedEmail`: recipients resolved and normalized (duplicates dropped, an address
  in ``to`` is not repeated in ``cc``/``bcc``), subject, text and optional HTML rendered in
  the chosen language (the action's ``language``, else the lead's, else
  ``default_language``), with ``salutation`` in that language available to the templates;
* :class:`PlannedWebhook`: the URL, the secret's name and the JSON payload;
* :class:`PlanFailed`: the action (or the rule's ``when``/switch value) could not be
  rendered: a template error, a recipient that renders to an invalid address, a CR/LF in
  a header-bound value. It carries every problem with its path; other actions and rules
  are planned regardless.

Idempotency: each planned action has a key unique per report, rule, trigger and action,
``report:{report_id}:rule:{rule_index}:{trigger}:{action_path}`` (the action path relative
to the rule, e.g. ``actions[0]`` or ``switch.cases[1].actions[0]``), with ``:rev:{revision}``
appended when the rule has ``notify_every_export``. Storing the outbox row under that key
makes a second export of the same report a no-op, while a changed report under
``notify_every_export`` notifies again. The key uses the rule's *index*: reordering rules
in a new mapping revision can make an already-notified report notify again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias
from uuid import UUID

from visitmail.domain.addresses import normalize_email
from visitmail.domain.errors import InvalidInput
from visitmail.domain.mapping import (
    Action,
    EmailAction,
    NotificationMapping,
    Problem,
    Rule,
    Trigger,
    WebhookAction,
)
from visitmail.domain.reports import Report
from visitmail.domain.salutation import primary_language, salutation
from visitmail.domain.sandbox import SandboxError, evaluate, is_template, render

Json: TypeAlias = str | int | float | bool | list["Json"] | dict[str, "Json"] | None

MAX_PLANNED_RECIPIENTS = 100  # to + cc + bcc of one email, after rendering
DEFAULT_LANGUAGE = "en"

_SEPARATORS = re.compile(r"[,;]")
_LINE_BREAKS = ("\r", "\n", "\x00")


@dataclass(frozen=True, slots=True)
class PlannedEmail:
    """A notification email, ready for the MIME builder and the outbox."""

    rule_index: int
    rule_name: str
    path: str  # of the action in the document: "rules[0].switch.cases[1].actions[0]"
    idempotency_key: str
    trigger: Trigger
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    reply_to: str | None
    subject: str  # one line, CR/LF refused
    text: str
    html: str | None
    language: str
    attach_pdf: bool


@dataclass(frozen=True, slots=True)
class PlannedWebhook:
    """A webhook POST: ``payload`` is the JSON body, signed with ``secret_ref``'s secret."""

    rule_index: int
    rule_name: str
    path: str
    idempotency_key: str
    trigger: Trigger
    url: str
    secret_ref: str
    allow_http: bool
    payload: dict[str, Json]


@dataclass(frozen=True, slots=True)
class PlanFailed:
    """An action (``idempotency_key`` set) or a whole rule (``when`` or the switch value
    failed; ``idempotency_key`` is ``None``) that could not be planned."""

    rule_index: int
    rule_name: str
    path: str
    idempotency_key: str | None
    trigger: Trigger
    problems: tuple[Problem, ...]

    @property
    def message(self) -> str:
        return "; ".join(f"{p.path}: {p.message}" for p in self.problems)


PlannedAction = PlannedEmail | PlannedWebhook | PlanFailed


def choose_language(requested: str | None, lead_language: str, default: str) -> str:
    """The action's language if set, else the lead's (if it is a usable tag), else
    ``default``."""
    if requested:
        return requested
    if primary_language(lead_language):
        return lead_language.strip()
    return default


def template_context(report: Report, trigger: Trigger | str, language: str) -> dict[str, Any]:
    """What templates and expressions see, exactly
    :data:`~visitmail.domain.mapping.TEMPLATE_NAMES`: the report's context plus ``trigger``,
    ``language`` and ``salutation`` (in ``language``)."""
    context = report.as_context()
    context["trigger"] = str(Trigger(trigger).value)
    context["language"] = language
    context["salutation"] = salutation(report.lead, language)
    return context


def to_json(value: object) -> Json:
    """A JSON-able copy: dates as ISO 8601, UUIDs and anything unknown as strings."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return str(value)


def webhook_payload(
    report: Report, trigger: Trigger, rule_index: int, rule: Rule
) -> dict[str, Json]:
    """The JSON body of a webhook: ``type`` (``report.exported`` / ``report.checked``),
    ``rule`` (index, name) and ``report`` (the template context's report fields plus
    ``revision``)."""
    report_json = to_json(report.as_context())
    assert isinstance(report_json, dict)
    report_json["revision"] = report.revision
    return {
        "type": f"report.{trigger.value}",
        "rule": {"index": rule_index, "name": rule.name},
        "report": report_json,
    }


def fire(
    mapping: NotificationMapping,
    report: Report,
    trigger: Trigger | str,
    *,
    default_language: str = DEFAULT_LANGUAGE,
) -> list[PlannedAction]:
    """Every action ``report`` fires on ``trigger`` under ``mapping``, in rule order.

    Template and address problems never raise: they become :class:`PlanFailed` entries
    (for that action, or for the rule when its ``when`` or switch value fails), and the
    other rules and actions are still planned. Raises :class:`InvalidInput` (field
    ``trigger``) only for a trigger that is not ``exported`` or ``checked``.
    """
    try:
        trig = Trigger(trigger)
    except ValueError:
        raise InvalidInput("must be 'exported' or 'checked'", field="trigger") from None
    planner = _Planner(report, trig, default_language)
    planned: list[PlannedAction] = []
    for index, rule in enumerate(mapping.rules):
        if rule.applies_to(report.event_id, trig):
            planned.extend(planner.rule(index, rule))
    return planned


class _Planner:
    def __init__(self, report: Report, trigger: Trigger, default_language: str) -> None:
        self.report = report
        self.trigger = trigger
        self.rule_language = choose_language(None, report.lead.language, default_language)
        self.default_language = default_language
        self._contexts: dict[str, dict[str, Any]] = {}

    def context(self, language: str) -> dict[str, Any]:
        if language not in self._contexts:
            self._contexts[language] = template_context(self.report, self.trigger, language)
        return self._contexts[language]

    def key(self, index: int, rule: Rule, relative: str) -> str:
        key = f"report:{self.report.id}:rule:{index}:{self.trigger.value}:{relative}"
        return f"{key}:rev:{self.report.revision}" if rule.notify_every_export else key

    def failed(
        self, index: int, rule: Rule, path: str, key: str | None, problems: Iterable[Problem]
    ) -> PlanFailed:
        return PlanFailed(index, rule.name, path, key, self.trigger, tuple(problems))

    def rule(self, index: int, rule: Rule) -> list[PlannedAction]:
        rule_path = f"rules[{index}]"
        context = self.context(self.rule_language)
        actions: tuple[Action, ...]
        if rule.switch is not None:
            value_path = f"{rule_path}.switch.value"
            try:
                value = render(rule.switch.value, context, autoescape=False).strip().casefold()
            except SandboxError as exc:
                return [
                    self.failed(index, rule, value_path, None, [Problem(value_path, exc.message)])
                ]
            relative = "switch.default"
            actions = rule.switch.default
            for k, case in enumerate(rule.switch.cases):
                if any(value == match.strip().casefold() for match in case.match):
                    relative, actions = f"switch.cases[{k}].actions", case.actions
                    break
        else:
            if rule.when is not None:
                when_path = f"{rule_path}.when"
                try:
                    if not evaluate(rule.when, context):
                        return []
                except SandboxError as exc:
                    return [
                        self.failed(index, rule, when_path, None, [Problem(when_path, exc.message)])
                    ]
            relative, actions = "actions", rule.actions
        return [
            self.action(index, rule, action, f"{relative}[{j}]") for j, action in enumerate(actions)
        ]

    def action(self, index: int, rule: Rule, action: Action, relative: str) -> PlannedAction:
        path = f"rules[{index}].{relative}"
        key = self.key(index, rule, relative)
        if isinstance(action, WebhookAction):
            return PlannedWebhook(
                rule_index=index,
                rule_name=rule.name,
                path=path,
                idempotency_key=key,
                trigger=self.trigger,
                url=action.url,
                secret_ref=action.secret_ref,
                allow_http=action.allow_http,
                payload=webhook_payload(self.report, self.trigger, index, rule),
            )
        return self.email(index, rule, action, path, key)

    def email(
        self, index: int, rule: Rule, action: EmailAction, path: str, key: str
    ) -> PlannedAction:
        language = choose_language(
            action.language, self.report.lead.language, self.default_language
        )
        render_ = _Renderer(self.context(language), f"{path}.email")
        to = render_.addresses(action.to, "to")
        cc = render_.addresses(action.cc, "cc")
        bcc = render_.addresses(action.bcc, "bcc")
        if action.cc_reporter:
            reporter_email = str(self.report.reporter.get("email", "")).strip()
            if reporter_email:
                cc += render_.address(reporter_email, "cc_reporter")
        reply = render_.addresses((action.reply_to,) if action.reply_to else (), "reply_to")
        if len(reply) > 1:
            render_.problem("reply_to", "must render a single address")
        subject = render_.header(action.subject, "subject")
        text = render_.text(action.body, "body", autoescape=False)
        html = render_.text(action.html, "html", autoescape=True) if action.html else None

        to = _unique(to, ())
        cc = _unique(cc, to)
        bcc = _unique(bcc, to + cc)
        if not to and not any(p.path.startswith(f"{path}.email.to") for p in render_.problems):
            render_.problem("to", "no recipient: every entry rendered empty")
        if len(to) + len(cc) + len(bcc) > MAX_PLANNED_RECIPIENTS:
            render_.problem("to", f"more than {MAX_PLANNED_RECIPIENTS} recipients")
        if render_.problems or subject is None or text is None:
            return self.failed(index, rule, path, key, render_.problems)
        return PlannedEmail(
            rule_index=index,
            rule_name=rule.name,
            path=path,
            idempotency_key=key,
            trigger=self.trigger,
            to=to,
            cc=cc,
            bcc=bcc,
            reply_to=reply[0] if reply else None,
            subject=subject.strip(),
            text=text,
            html=html,
            language=language,
            attach_pdf=action.attach_pdf,
        )


class _Renderer:
    """Renders one email action's fields, collecting problems under ``base`` paths."""

    def __init__(self, context: dict[str, Any], base: str) -> None:
        self.context = context
        self.base = base
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append(Problem(f"{self.base}.{field}", message))

    def text(self, template: str, field: str, *, autoescape: bool) -> str | None:
        try:
            return render(template, self.context, autoescape=autoescape)
        except SandboxError as exc:
            self.problem(field, exc.message)
            return None

    def header(self, template: str, field: str) -> str | None:
        value = self.text(template, field, autoescape=False)
        if value is not None and any(ch in value for ch in _LINE_BREAKS):
            self.problem(
                field, "rendered a line break (CR/LF): refused to prevent header injection"
            )
            return None
        return value

    def address(self, text: str, field: str) -> tuple[str, ...]:
        found: list[str] = []
        for piece in _SEPARATORS.split(text):
            if not piece.strip():
                continue
            try:
                found.append(normalize_email(piece, field=f"{self.base}.{field}"))
            except InvalidInput as exc:
                shown = piece.strip()[:80]
                self.problem(field, f"{shown!r} {exc.message}")
        return tuple(found)

    def addresses(self, entries: Iterable[str], field: str) -> tuple[str, ...]:
        found: list[str] = []
        for i, entry in enumerate(entries):
            where = f"{field}[{i}]" if field != "reply_to" else field
            # static entries were normalized when the mapping was saved; normalizing again
            # is cheap and covers mappings built in code
            value = self.header(entry, where) if is_template(entry) else entry
            if value is not None:
                found.extend(self.address(value, where))
        return tuple(found)


def _unique(addresses: Iterable[str], exclude: tuple[str, ...]) -> tuple[str, ...]:
    seen = set(exclude)
    out: list[str] = []
    for address in addresses:
        if address not in seen:
            seen.add(address)
            out.append(address)
    return tuple(out)
