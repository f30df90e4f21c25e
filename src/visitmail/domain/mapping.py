"""An organization's notification mapping: the document, its model and its validation.

The mapping is one JSON (or YAML) document that admins edit as a whole. It lists rules;
each rule applies to one event (or ``"*"``: all), fires on one trigger (``exported`` when a
report is exported from the app, ``checked`` when it is checked in the dashboard), and
either

* has ``actions``, optionally guarded by a ``when`` expression, or
* has a ``switch``: a ``value`` template (``{{ lead.zip[:1] }}``) and ``cases`` whose
  ``match`` lists are compared with the rendered value (whitespace trimmed, case
  ignored); the first matching case's actions run, else the ``default`` actions.

An action is an ``email`` or a ``webhook``::

    {"version": 1,
     "rules": [
       {"name": "Regional teams", "event": "*", "on": "exported",
        "switch": {"value": "{{ lead.zip[:1] }}",
                   "cases": [{"match": ["1"], "actions": [{"email": {
                                 "to": ["berlin@acme.example"],
                                 "subject": "New lead: {{ lead.company }}",
                                 "body": "{{ salutation }}, …", "attach_pdf": true}}]}],
                   "default": [{"email": {"to": ["sales@acme.example"], "subject": "…",
                                          "body": "…"}}]}},
       {"name": "Big fish", "event": "6f1c…", "on": "checked",
        "when": "answers.budget == 'high' and lead.country == 'DE'",
        "actions": [{"webhook": {"url": "https://crm.example/hook", "secret_ref": "crm"}}]}]}

Fields (``*`` = required):

* document: ``version``\\* (``1``), ``rules``\\* (at most :data:`MAX_RULES`).
* rule: ``name``\\*, ``event``\\* (``"*"`` or an event UUID), ``on``\\* (``exported`` |
  ``checked``), ``when`` (expression), ``actions`` (1 to :data:`MAX_ACTIONS`) or ``switch``,
  ``notify_every_export`` (default ``false``: a report notifies once per rule and action;
  ``true``: again whenever a *changed* report is exported/checked again), ``enabled``
  (default ``true``), ``description``.
* switch: ``value``\\* (template), ``cases``\\* (1 to :data:`MAX_CASES`; each ``match``\\*: a
  list of strings, ``actions``\\*: a list, may be empty), ``default`` (a list of actions).
* email: ``to``\\* (addresses), ``cc``, ``bcc``, ``reply_to``, ``subject``\\* (one-line
  template), ``body``\\* (plain-text template), ``html`` (HTML template, values escaped),
  ``language`` (BCP 47; default: the lead's), ``cc_reporter`` (bool), ``attach_pdf`` (bool:
  the report as a PDF). An address entry is either a plain address (checked now) or a
  template such as ``{{ reporter.email }}`` (checked when it is rendered; it may yield
  several addresses separated by ``,`` or ``;``). Bare addresses only, no display names.
* webhook: ``url``\\* (``https://``), ``secret_ref``\\* (the name of the HMAC-SHA256 secret,
  stored elsewhere, that signs the POST), ``allow_http`` (accepted only when the host is
  ``localhost``, ``127.0.0.1`` or ``::1``: for local receivers in development and tests;
  then an ``http://`` URL is allowed). Whether the host may be reached at all (private
  networks) is decided at delivery time by the operator's network policy.

Templates and expressions see: ``id``, ``event_id``, ``status``, ``lead`` (the fields of
:data:`~visitmail.domain.reports.LEAD_FIELDS`), ``answers``, ``notes``, ``consent``,
``reporter`` (``name``, ``email``), ``captured_at``, ``trigger``, ``language`` and
``salutation`` (:mod:`visitmail.domain.salutation`). They run in
:mod:`visitmail.domain.sandbox`.

:func:`parse_mapping` validates the *whole* document and raises one :class:`MappingInvalid`
listing every problem with its path (``rules[2].switch.cases[0].match``) and a message;
unknown keys are problems too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, TypeVar
from urllib.parse import urlsplit

from visitmail.domain.addresses import normalize_email
from visitmail.domain.errors import InvalidInput
from visitmail.domain.reports import LEAD_FIELDS
from visitmail.domain.sandbox import (
    TemplateInvalid,
    check_expression,
    check_template,
    is_template,
)

SUPPORTED_VERSIONS = frozenset({1})
ALL_EVENTS = "*"

MAX_RULES = 200
MAX_ACTIONS = 50  # per action list (a rule's actions, a case's, the default)
MAX_CASES = 100
MAX_MATCH_VALUES = 100
MAX_MATCH_CHARS = 200
MAX_RECIPIENTS = 50  # entries per to / cc / bcc
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2_000
MAX_EXPRESSION_CHARS = 2_000  # ``when`` and the switch ``value``
MAX_SUBJECT_CHARS = 1_000
MAX_BODY_CHARS = 65_536  # ``body`` and ``html``
MAX_ADDRESS_CHARS = 1_000  # one address entry (static or template)
MAX_URL_CHARS = 2_048
MAX_TEMPLATE_CHARS_TOTAL = 2_000_000  # all templates of a document together
MAX_PROBLEMS = 500

TEMPLATE_NAMES: frozenset[str] = frozenset(
    {
        "id",
        "event_id",
        "status",
        "lead",
        "answers",
        "notes",
        "consent",
        "reporter",
        "captured_at",
        "trigger",
        "language",
        "salutation",
    }
)
"""The top-level names templates and expressions may use (``mapping_eval`` provides them)."""

TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "lead": LEAD_FIELDS,
    "consent": ("follow_up_email", "marketing"),
}
"""Names whose fields are fixed, so that ``{{ lead.fax }}`` is reported when saving."""

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

SourceCheck = Callable[[str, bool, str | None], Sequence[str]]
"""An extra check of every template and expression that compiled: ``(source,
is_expression, event)`` → messages (each a problem at the source's path). ``event`` is the
rule's ``event`` (``"*"`` or a canonical UUID string), ``None`` when that is invalid.
:func:`visitmail.domain.mapping_refs.answer_check` is one."""

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_SECRET_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Trigger(StrEnum):
    EXPORTED = "exported"  # the report was exported from the app
    CHECKED = "checked"  # the report was checked in the dashboard


class Problem(NamedTuple):
    """One thing wrong with a mapping document: where (``rules[0].actions[1].email.to[0]``;
    ``""`` for the document itself) and what."""

    path: str
    message: str


class MappingInvalid(InvalidInput):
    """The document breaks the format. ``problems`` lists every problem found (in document
    order, at most :data:`MAX_PROBLEMS`); ``field`` is the first one's path."""

    code = "mapping_invalid"

    def __init__(self, problems: Sequence[Problem]):
        if not problems:
            raise ValueError("MappingInvalid needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems)
        first = self.problems[0]
        where = f"{first.path}: " if first.path else ""
        count = len(self.problems)
        summary = "1 problem" if count == 1 else f"{count} problems"
        super().__init__(
            f"the notification mapping has {summary}; first: {where}{first.message}",
            field=first.path or None,
        )


@dataclass(frozen=True, slots=True)
class EmailAction:
    """An email to colleagues. Address entries are normalized addresses or templates
    (:func:`~visitmail.domain.sandbox.is_template`)."""

    to: tuple[str, ...]
    subject: str
    body: str
    html: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None
    cc_reporter: bool = False
    language: str | None = None
    attach_pdf: bool = False


@dataclass(frozen=True, slots=True)
class WebhookAction:
    """An HTTPS POST of the report as JSON, signed with the secret named ``secret_ref``."""

    url: str
    secret_ref: str
    allow_http: bool = False


Action = EmailAction | WebhookAction


@dataclass(frozen=True, slots=True)
class SwitchCase:
    match: tuple[str, ...]
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Switch:
    value: str  # a template; its rendering, trimmed, is compared case-insensitively
    cases: tuple[SwitchCase, ...]
    default: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """``actions`` (guarded by ``when`` if set) or ``switch``: never both."""

    name: str
    event: str  # ALL_EVENTS or a canonical UUID string
    on: Trigger
    actions: tuple[Action, ...] = ()
    when: str | None = None
    switch: Switch | None = None
    notify_every_export: bool = False
    enabled: bool = True
    description: str = ""

    def applies_to(self, event_id: str | uuid.UUID, trigger: Trigger | str) -> bool:
        """Enabled, for this event (or all), on this trigger."""
        return (
            self.enabled
            and self.on == trigger
            and (self.event == ALL_EVENTS or self.event == str(event_id).lower())
        )


@dataclass(frozen=True, slots=True)
class NotificationMapping:
    version: int
    rules: tuple[Rule, ...]


Mapping = NotificationMapping
"""The name the issue uses; :class:`NotificationMapping` avoids clashing with
``collections.abc.Mapping``."""

EMPTY_MAPPING = NotificationMapping(version=1, rules=())

_T = TypeVar("_T")


def _key(path: str, key: str) -> str:
    if not key:
        return f'{path}[""]'  # the empty key: a visible path, not the document's own ""
    return f"{path}.{key}" if path else key


def _index(path: str, index: int) -> str:
    return f"{path}[{index}]"


class _Validator:
    """Walks the document once, collecting every problem instead of stopping."""

    def __init__(self, sources: SourceCheck | None = None) -> None:
        self.problems: list[Problem] = []
        self.dropped = 0
        self.template_chars = 0
        self.sources = sources
        self.event: str | None = None  # the event of the rule being read

    def checked_further(self, source: str, path: str, *, expression: bool) -> bool:
        """Run the extra source check; False (and the problems added) if it complained."""
        if self.sources is None:
            return True
        messages = self.sources(source, expression, self.event)
        for message in messages:
            self.add(path, message)
        return not messages

    def add(self, path: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(path, message))
        else:
            self.dropped += 1

    # --- shapes -------------------------------------------------------------------

    def obj(
        self, value: object, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict[str, object] | None:
        if not isinstance(value, dict):
            self.add(path, "must be an object")
            return None
        allowed = required + optional
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                self.add(_key(path, str(key)), f"unknown key (allowed here: {', '.join(allowed)})")
        for key in required:
            if key not in value:
                self.add(_key(path, key), "is required")
        return {key: item for key, item in value.items() if isinstance(key, str)}

    def items(
        self, value: object, path: str, *, limit: int, allow_empty: bool
    ) -> list[object] | None:
        if not isinstance(value, list):
            self.add(path, "must be a list")
            return None
        if not value and not allow_empty:
            self.add(path, "must not be empty")
        if len(value) > limit:
            self.add(path, f"must have at most {limit} entries, not {len(value)}")
            return value[:limit]
        return value

    def string(
        self, value: object, path: str, *, limit: int, allow_empty: bool = False
    ) -> str | None:
        if not isinstance(value, str):
            self.add(path, "must be a string")
            return None
        if not allow_empty and not value.strip():
            self.add(path, "must not be empty")
            return None
        if len(value) > limit:
            self.add(path, f"must be at most {limit} characters long, not {len(value)}")
            return None
        return value

    def one_line(self, value: object, path: str, *, limit: int) -> str | None:
        text = self.string(value, path, limit=limit)
        if text is not None and any(ch in text for ch in "\r\n\x00"):
            self.add(path, "must be a single line (no line breaks)")
            return None
        return text

    def boolean(self, value: object, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.add(path, "must be true or false")
            return None
        return value

    def optional(
        self,
        obj: dict[str, object],
        key: str,
        path: str,
        read: Callable[[object, str], _T | None],
        default: _T,
    ) -> _T:
        if key not in obj:
            return default
        result = read(obj[key], _key(path, key))
        return default if result is None else result

    # --- templates ----------------------------------------------------------------

    def template(
        self, value: object, path: str, *, limit: int, one_line: bool = False
    ) -> str | None:
        text = (
            self.one_line(value, path, limit=limit)
            if one_line
            else self.string(value, path, limit=limit)
        )
        if text is None:
            return None
        self.template_chars += len(text)
        try:
            check_template(text, known_names=TEMPLATE_NAMES, known_fields=TEMPLATE_FIELDS)
        except TemplateInvalid as exc:
            self.add(path, exc.message)
            return None
        return text if self.checked_further(text, path, expression=False) else None

    def expression(self, value: object, path: str) -> str | None:
        text = self.string(value, path, limit=MAX_EXPRESSION_CHARS)
        if text is None:
            return None
        try:
            check_expression(text, known_names=TEMPLATE_NAMES, known_fields=TEMPLATE_FIELDS)
        except TemplateInvalid as exc:
            self.add(path, exc.message)
            return None
        return text if self.checked_further(text, path, expression=True) else None

    def address(self, value: object, path: str) -> str | None:
        text = self.string(value, path, limit=MAX_ADDRESS_CHARS)
        if text is None:
            return None
        if is_template(text):
            return self.template(text, path, limit=MAX_ADDRESS_CHARS, one_line=True)
        try:
            return normalize_email(text, field=path)
        except InvalidInput as exc:
            self.add(path, exc.message)
            return None

    def addresses(self, value: object, path: str, *, allow_empty: bool) -> tuple[str, ...]:
        entries = self.items(value, path, limit=MAX_RECIPIENTS, allow_empty=allow_empty)
        found = (self.address(entry, _index(path, i)) for i, entry in enumerate(entries or []))
        return tuple(address for address in found if address is not None)

    # --- the document -------------------------------------------------------------

    def document(self, doc: object) -> NotificationMapping | None:
        top = self.obj(doc, "", ("version", "rules"))
        if top is None:
            return None
        version = top.get("version")
        if "version" in top and (type(version) is not int or version not in SUPPORTED_VERSIONS):
            supported = ", ".join(map(str, sorted(SUPPORTED_VERSIONS)))
            self.add("version", f"must be {supported}")
        rules: list[Rule] = []
        if "rules" in top:
            entries = self.items(top["rules"], "rules", limit=MAX_RULES, allow_empty=True)
            for i, entry in enumerate(entries or []):
                rule = self.rule(entry, _index("rules", i))
                if rule is not None:
                    rules.append(rule)
        if self.template_chars > MAX_TEMPLATE_CHARS_TOTAL:
            self.add("", f"the templates total more than {MAX_TEMPLATE_CHARS_TOTAL} characters")
        if type(version) is not int:
            return None
        return NotificationMapping(version=version, rules=tuple(rules))

    def rule(self, value: object, path: str) -> Rule | None:
        obj = self.obj(
            value,
            path,
            ("name", "event", "on"),
            ("description", "enabled", "when", "actions", "switch", "notify_every_export"),
        )
        if obj is None:
            return None
        name = None
        if "name" in obj:
            name = self.one_line(obj["name"], _key(path, "name"), limit=MAX_NAME_CHARS)
        event = self.event_id(obj["event"], _key(path, "event")) if "event" in obj else None
        self.event = event
        on = self.trigger(obj["on"], _key(path, "on")) if "on" in obj else None
        description = self.optional(
            obj,
            "description",
            path,
            lambda v, p: self.string(v, p, limit=MAX_DESCRIPTION_CHARS, allow_empty=True),
            "",
        )
        enabled = self.optional(obj, "enabled", path, self.boolean, True)
        every = self.optional(obj, "notify_every_export", path, self.boolean, False)

        when = None
        if "when" in obj:
            when = self.expression(obj["when"], _key(path, "when"))
        actions: tuple[Action, ...] = ()
        if "actions" in obj:
            actions = self.actions(obj["actions"], _key(path, "actions"), allow_empty=False)
        switch = None
        if "switch" in obj:
            switch = self.switch(obj["switch"], _key(path, "switch"))
            if "when" in obj:
                self.add(
                    _key(path, "switch"),
                    "cannot be combined with 'when' (a rule has 'when' + 'actions' or a "
                    "'switch'); put the condition into the switch value or split the rule",
                )
            if "actions" in obj:
                self.add(
                    _key(path, "switch"),
                    "cannot be combined with 'actions': the switch's cases hold the actions",
                )
        elif "actions" not in obj:
            self.add(_key(path, "actions"), "is required (or a 'switch')")

        if name is None or event is None or on is None:
            return None
        return Rule(
            name=name,
            event=event,
            on=on,
            actions=actions,
            when=when,
            switch=switch,
            notify_every_export=every,
            enabled=enabled,
            description=description,
        )

    def event_id(self, value: object, path: str) -> str | None:
        if value == ALL_EVENTS:
            return ALL_EVENTS
        if isinstance(value, str):
            try:
                return str(uuid.UUID(value.strip()))
            except ValueError:
                pass
        self.add(path, 'must be "*" (all events) or an event id (a UUID)')
        return None

    def trigger(self, value: object, path: str) -> Trigger | None:
        if isinstance(value, str) and value in {t.value for t in Trigger}:
            return Trigger(value)
        self.add(path, f"must be one of: {', '.join(t.value for t in Trigger)}")
        return None

    def switch(self, value: object, path: str) -> Switch | None:
        obj = self.obj(value, path, ("value", "cases"), ("default",))
        if obj is None:
            return None
        expr = None
        if "value" in obj:
            expr = self.template(obj["value"], _key(path, "value"), limit=MAX_EXPRESSION_CHARS)
        cases: list[SwitchCase] = []
        seen: dict[str, int] = {}
        if "cases" in obj:
            cases_path = _key(path, "cases")
            entries = self.items(obj["cases"], cases_path, limit=MAX_CASES, allow_empty=False)
            for k, entry in enumerate(entries or []):
                case = self.case(entry, _index(cases_path, k), k, seen)
                if case is not None:
                    cases.append(case)
        default: tuple[Action, ...] = ()
        if "default" in obj:
            default = self.actions(obj["default"], _key(path, "default"), allow_empty=True)
        if expr is None:
            return None
        return Switch(value=expr, cases=tuple(cases), default=default)

    def case(self, value: object, path: str, index: int, seen: dict[str, int]) -> SwitchCase | None:
        obj = self.obj(value, path, ("match", "actions"))
        if obj is None:
            return None
        matches: list[str] = []
        if "match" in obj:
            match_path = _key(path, "match")
            entries = self.items(
                obj["match"], match_path, limit=MAX_MATCH_VALUES, allow_empty=False
            )
            for j, entry in enumerate(entries or []):
                entry_path = _index(match_path, j)
                if isinstance(entry, int | float) and not isinstance(entry, bool):
                    self.add(
                        entry_path,
                        'must be a string: quote numbers ("1", "01067") so that leading '
                        "zeros survive",
                    )
                    continue
                text = self.string(entry, entry_path, limit=MAX_MATCH_CHARS, allow_empty=True)
                if text is None:
                    continue
                folded = text.strip().casefold()
                if folded in seen:
                    where = "this case" if seen[folded] == index else f"cases[{seen[folded]}]"
                    self.add(entry_path, f"{text!r} is already matched by {where}")
                    continue
                seen[folded] = index
                matches.append(text)
        actions: tuple[Action, ...] = ()
        if "actions" in obj:
            actions = self.actions(obj["actions"], _key(path, "actions"), allow_empty=True)
        if "match" not in obj or "actions" not in obj:
            return None
        return SwitchCase(match=tuple(matches), actions=actions)

    def actions(self, value: object, path: str, *, allow_empty: bool) -> tuple[Action, ...]:
        entries = self.items(value, path, limit=MAX_ACTIONS, allow_empty=allow_empty)
        found = (self.action(entry, _index(path, j)) for j, entry in enumerate(entries or []))
        return tuple(action for action in found if action is not None)

    def action(self, value: object, path: str) -> Action | None:
        obj = self.obj(value, path, (), ("email", "webhook"))
        if obj is None:
            return None
        kinds = [kind for kind in ("email", "webhook") if kind in obj]
        if len(kinds) != 1:
            self.add(path, "must have exactly one of 'email' or 'webhook'")
        email = self.email(obj["email"], _key(path, "email")) if "email" in obj else None
        webhook = self.webhook(obj["webhook"], _key(path, "webhook")) if "webhook" in obj else None
        if len(kinds) != 1:
            return None
        return email if kinds[0] == "email" else webhook

    def email(self, value: object, path: str) -> EmailAction | None:
        obj = self.obj(
            value,
            path,
            ("to", "subject", "body"),
            ("cc", "bcc", "reply_to", "cc_reporter", "language", "html", "attach_pdf"),
        )
        if obj is None:
            return None
        to = self.addresses(obj["to"], _key(path, "to"), allow_empty=False) if "to" in obj else ()
        cc = self.addresses(obj["cc"], _key(path, "cc"), allow_empty=True) if "cc" in obj else ()
        bcc = (
            self.addresses(obj["bcc"], _key(path, "bcc"), allow_empty=True) if "bcc" in obj else ()
        )
        reply_to = self.optional(obj, "reply_to", path, self.address, None)
        subject = body = None
        if "subject" in obj:
            subject = self.template(
                obj["subject"], _key(path, "subject"), limit=MAX_SUBJECT_CHARS, one_line=True
            )
        if "body" in obj:
            body = self.template(obj["body"], _key(path, "body"), limit=MAX_BODY_CHARS)
        html = self.optional(
            obj, "html", path, lambda v, p: self.template(v, p, limit=MAX_BODY_CHARS), None
        )
        language = self.optional(obj, "language", path, self.language, None)
        cc_reporter = self.optional(obj, "cc_reporter", path, self.boolean, False)
        attach_pdf = self.optional(obj, "attach_pdf", path, self.boolean, False)
        if subject is None or body is None or not to:
            return None
        return EmailAction(
            to=to,
            subject=subject,
            body=body,
            html=html,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            cc_reporter=cc_reporter,
            language=language,
            attach_pdf=attach_pdf,
        )

    def language(self, value: object, path: str) -> str | None:
        if isinstance(value, str) and _LANGUAGE.match(value) and len(value) <= 35:
            return value
        self.add(path, 'must be a language tag such as "de", "en" or "de-AT"')
        return None

    def webhook(self, value: object, path: str) -> WebhookAction | None:
        obj = self.obj(value, path, ("url", "secret_ref"), ("allow_http",))
        if obj is None:
            return None
        allow_http = self.optional(obj, "allow_http", path, self.boolean, False)
        url = self.url(obj["url"], _key(path, "url"), allow_http) if "url" in obj else None
        secret_ref = None
        if "secret_ref" in obj:
            ref = obj["secret_ref"]
            if isinstance(ref, str) and _SECRET_REF.match(ref):
                secret_ref = ref
            else:
                self.add(
                    _key(path, "secret_ref"),
                    "must name a stored secret: 1 to 64 letters, digits, '_', '.' or '-'",
                )
        if allow_http and isinstance(obj.get("url"), str):
            host = _host_of(str(obj["url"]))
            if host is not None and host not in LOOPBACK_HOSTS:
                self.add(
                    _key(path, "allow_http"),
                    "is accepted only for localhost, 127.0.0.1 or ::1 (local receivers)",
                )
        if url is None or secret_ref is None:
            return None
        return WebhookAction(url=url, secret_ref=secret_ref, allow_http=allow_http)

    def url(self, value: object, path: str, allow_http: bool) -> str | None:
        text = self.string(value, path, limit=MAX_URL_CHARS)
        if text is None:
            return None
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
            self.add(path, "must not contain spaces, line breaks or control characters")
            return None
        try:
            parts = urlsplit(text)
            port = parts.port  # raises for a port out of range
        except ValueError as exc:
            self.add(path, f"is not a valid URL ({exc})")
            return None
        del port
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http"):
            self.add(path, "must be an https:// URL")
            return None
        if not parts.hostname:
            self.add(path, "must name a host")
            return None
        if parts.username is not None or parts.password is not None:
            self.add(path, "must not contain a user or password; sign with secret_ref instead")
            return None
        if scheme == "http" and not (allow_http and parts.hostname in LOOPBACK_HOSTS):
            self.add(
                path,
                "must be an https:// URL (http:// only for localhost with allow_http: true)",
            )
            return None
        return text


def _host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def parse_mapping(doc: object, *, sources: SourceCheck | None = None) -> NotificationMapping:
    """Validate a decoded mapping document (``json.loads`` / a YAML loader's result) and
    return the model.

    ``sources``, if given, checks every template and expression further (the answers they
    read, :func:`visitmail.domain.mapping_refs.answer_check`); its messages are problems
    too, listed with all others.

    Every problem in the document is collected: the structure, unknown keys, required
    keys, types, limits, addresses, URLs, and every template and expression (compiled in
    the sandbox, so syntax errors, refused constructs and unknown names are found now,
    with their line).

    Raises :class:`MappingInvalid` carrying all problems (``.problems``), never just the
    first.
    """
    validator = _Validator(sources)
    mapping = validator.document(doc)
    if validator.dropped:
        validator.problems.append(
            Problem("", f"… and {validator.dropped} more problems not listed")
        )
    if validator.problems or mapping is None:
        raise MappingInvalid(validator.problems or [Problem("", "is not a valid mapping")])
    return mapping
