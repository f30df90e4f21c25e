"""Follow-up emails to leads: the per-event, per-language template, its validation, its
rendering for one report, and the signed unsubscribe token (pure: no I/O).

A template belongs to one event and one of the event's languages: a one-line ``subject``,
a plain-text body ``text``, an optional ``html`` body, the ids of media files of the event
to attach, and two switches: ``reply_to_reporter`` (default on: answers go to the colleague
who met the lead, else to the organization's reply-to) and ``bcc_reporter`` (default off).

Templates see exactly the names the notification mapping's templates see
(:func:`~visitmail.domain.mapping_eval.template_context`: ``lead``, ``answers``, ``notes``,
``reporter``, ``salutation`` in the template's language, …) with ``trigger`` set to
``"follow_up"``, plus ``event`` and ``questions`` and choice answers as their labels
(:mod:`visitmail.domain.follow_up_context`). A lead reads the reporter's name as the
signature (``{{ reporter.name }}``) and in Reply-To: :func:`signed_by` puts the
organization's name there when the reporter has no name of their own
(:func:`~visitmail.domain.identity.has_own_name`), so a lead never reads "admin".
:func:`checked_template` compiles all three parts in the sandbox when the template is saved
and names the part (``subject``, ``text``, ``html``) and the line of the first problem.
:func:`render_follow_up` refuses a subject that renders a line break (a text answer or the
notes can hold one), naming ``subject``.

The unsubscribe token is ``<payload>.<mac>``, both unpadded base64url: the payload is the
organization's 16 UUID bytes followed by the lower-cased address in UTF-8, the MAC is
HMAC-SHA256 over ``visitmail-unsubscribe-v1`` and the payload. Keys come from the caller
(the web layer derives them from the master key ring; see ``web/api/follow_ups.py``):
:func:`sign_unsubscribe` uses the first, :func:`verify_unsubscribe` accepts any, so links
in mail already sent stay valid after a key rotation while the old key is in the ring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from visitmail.domain.errors import InvalidInput
from visitmail.domain.events import Event
from visitmail.domain.follow_up_context import EVENT_FIELDS, event_context, labeled_answers
from visitmail.domain.header_text import header_safe
from visitmail.domain.html_scripts import refuse_scripts
from visitmail.domain.identity import has_own_name
from visitmail.domain.mapping import TEMPLATE_FIELDS, TEMPLATE_NAMES, Trigger
from visitmail.domain.mapping_eval import template_context
from visitmail.domain.reports import Report
from visitmail.domain.sandbox import SandboxError, TemplateInvalid, check_template, render

MAX_SUBJECT_TEMPLATE_CHARS = 1_000
MAX_BODY_TEMPLATE_CHARS = 100_000
MAX_ATTACHMENTS = 10
MAX_RENDERED_SUBJECT_CHARS = 900  # what a MailSpec accepts
FOLLOW_UP_TRIGGER = "follow_up"
# The mapping's names plus the event's (domain.follow_up_context); ``event`` has fixed
# fields, so ``{{ event.start }}`` is reported when the template is saved.
FOLLOW_UP_NAMES: frozenset[str] = TEMPLATE_NAMES | {"event", "questions"}
FOLLOW_UP_FIELDS: dict[str, tuple[str, ...]] = {**TEMPLATE_FIELDS, "event": EVENT_FIELDS}
_LINE_BREAKS = ("\r", "\n", "\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c")


class FollowUpStatus(StrEnum):
    """What a follow-up request came to, per report."""

    QUEUED = "queued"  # a message is in the outbox
    ALREADY_SENT = "already_sent"  # this template went to this lead before (not forced)
    SUPPRESSED = "suppressed"  # the address is on the suppression list; nothing queued
    NO_CONSENT = "no_consent"  # consent is required and the lead did not give it
    NO_TEMPLATE = "no_template"  # no template in the lead's nor the default language
    ERROR = "error"  # anything else (bulk only; the single request answers an error)


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"  # the lead used the List-Unsubscribe link
    REJECTED = "rejected"  # a server refused the address permanently (5xx)
    MANUAL = "manual"
    BOUNCED = "bounced"  # a hard bounce, or soft bounces over the limit, after a 250
    COMPLAINED = "complained"  # the lead marked a follow-up as spam


@dataclass(frozen=True, slots=True)
class FollowUpTemplateSpec:
    """What an event manager writes for one event and language."""

    subject: str
    text: str
    html: str | None = None
    attachments: tuple[UUID, ...] = ()
    reply_to_reporter: bool = True
    bcc_reporter: bool = False


@dataclass(frozen=True, slots=True)
class FollowUpTemplate:
    id: UUID
    organization_id: UUID
    event_id: UUID
    language: str
    spec: FollowUpTemplateSpec
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RenderedFollowUp:
    subject: str
    text: str
    html: str | None


def _checked_part(source: str, field: str, *, limit: int) -> str:
    if len(source) > limit:
        raise InvalidInput(f"must be at most {limit} characters", field=field)
    if "\x00" in source:
        raise InvalidInput("must not contain NUL characters", field=field)
    try:
        check_template(source, known_names=FOLLOW_UP_NAMES, known_fields=FOLLOW_UP_FIELDS)
    except TemplateInvalid as exc:
        raise TemplateInvalid(exc.reason, line=exc.line, field=field) from None
    if field == "html":
        refuse_scripts(source, field=field)
    return source


def checked_template(spec: FollowUpTemplateSpec) -> FollowUpTemplateSpec:
    """The spec with the subject stripped and an empty ``html`` as ``None``; or
    :class:`InvalidInput` naming ``subject``, ``text``, ``html`` or ``attachments[i]``.
    Sandbox problems are :class:`TemplateInvalid` with the line (``line 2: …``)."""
    subject = spec.subject.strip()
    if not subject:
        raise InvalidInput("must not be empty", field="subject")
    if any(ch in subject for ch in _LINE_BREAKS):
        raise InvalidInput("must be one line", field="subject")
    header_safe(subject, field="subject")  # what the send would refuse, refused now
    _checked_part(subject, "subject", limit=MAX_SUBJECT_TEMPLATE_CHARS)
    if not spec.text.strip():
        raise InvalidInput("must not be empty", field="text")
    _checked_part(spec.text, "text", limit=MAX_BODY_TEMPLATE_CHARS)
    html = spec.html if spec.html is not None and spec.html.strip() else None
    if html is not None:
        _checked_part(html, "html", limit=MAX_BODY_TEMPLATE_CHARS)
    if len(spec.attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(f"at most {MAX_ATTACHMENTS} attachments", field="attachments")
    seen: set[UUID] = set()
    for i, media_id in enumerate(spec.attachments):
        if media_id in seen:
            raise InvalidInput("is attached twice", field=f"attachments[{i}]")
        seen.add(media_id)
    return replace(spec, subject=subject, html=html, attachments=tuple(spec.attachments))


def choose_language(lead_language: str, available: Sequence[str], default: str) -> str:
    """The lead's language when a template exists in it, else the event's ``default``."""
    wanted = lead_language.strip().lower()
    return wanted if wanted and wanted in available else default


def signed_by(report: Report, organization_name: str) -> Report:
    """``report`` as a follow-up to its lead sees it: unchanged if the reporter has a name
    of their own, else with ``reporter.name`` set to ``organization_name`` (the address
    stays, for Reply-To)."""
    name = str(report.reporter.get("name", ""))
    email = str(report.reporter.get("email", ""))
    if has_own_name(name, email) or not organization_name.strip():
        return report
    return replace(report, reporter={**report.reporter, "name": organization_name.strip()})


def follow_up_context(report: Report, language: str, event: Event | None = None) -> dict[str, Any]:
    """The mapping's template context (same names) with ``trigger`` = ``"follow_up"``;
    with ``event``, also ``event`` and ``questions`` and the answers with their labels
    (:mod:`visitmail.domain.follow_up_context`)."""
    context = template_context(report, Trigger.EXPORTED, language)
    context["trigger"] = FOLLOW_UP_TRIGGER
    if event is not None:
        context.update(event_context(event, language))
        context["answers"] = labeled_answers(report.answers, event, language)
    return context


def _render(source: str, context: dict[str, Any], field: str, *, autoescape: bool) -> str:
    try:
        return render(source, context, autoescape=autoescape)
    except SandboxError as exc:
        raise type(exc)(exc.reason, line=exc.line, field=field) from None


def render_follow_up(
    spec: FollowUpTemplateSpec, report: Report, language: str, event: Event | None = None
) -> RenderedFollowUp:
    """Subject, text and html for ``report`` in ``language`` (``event``: see
    :func:`follow_up_context`). Raises :class:`InvalidInput` naming ``subject`` (a line
    break or control character rendered into it, or too long) or ``html`` (a script: the
    rule of the save, :func:`~visitmail.domain.html_scripts.refuse_scripts`, applied again
    to what is stored), or a :class:`SandboxError` naming the part that failed at run time."""
    if spec.html:
        refuse_scripts(spec.html, field="html")
    context = follow_up_context(report, language, event)
    subject = _render(spec.subject, context, "subject", autoescape=False)
    if any(ch in subject for ch in _LINE_BREAKS):
        raise InvalidInput(
            "rendered a line break (CR/LF): refused to prevent header injection",
            field="subject",
        )
    subject = subject.strip()
    if len(subject) > MAX_RENDERED_SUBJECT_CHARS:
        raise InvalidInput(
            f"renders longer than {MAX_RENDERED_SUBJECT_CHARS} characters", field="subject"
        )
    text = _render(spec.text, context, "text", autoescape=False)
    html = _render(spec.html, context, "html", autoescape=True) if spec.html else None
    return RenderedFollowUp(subject, text, html)


def idempotency_key(report_id: UUID, template_id: UUID, sequence: int) -> str:
    """``follow-up:{report}:{template}`` for the first send, ``…:{n}`` for the n-th forced
    one: the outbox stores each once, so a retried request never queues twice."""
    base = f"follow-up:{report_id}:{template_id}"
    return base if sequence <= 1 else f"{base}:{sequence}"


# --- unsubscribe tokens -------------------------------------------------------------------

_MAC_CONTEXT = b"visitmail-unsubscribe-v1\x00"
_MAX_TOKEN_CHARS = 1_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def suppression_address(address: str) -> str:
    """How an address is kept on the suppression list: stripped and lower-cased (erring on
    the side of not mailing someone who asked not to be)."""
    return address.strip().lower()


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _MAC_CONTEXT + payload, hashlib.sha256).digest()


def sign_unsubscribe(keys: Sequence[bytes], organization_id: UUID, address: str) -> str:
    """A URL-safe token naming the organization and the address, signed with ``keys[0]``."""
    payload = organization_id.bytes + suppression_address(address).encode("utf-8")
    return f"{_b64(payload)}.{_b64(_mac(keys[0], payload))}"


def verify_unsubscribe(keys: Sequence[bytes], token: str) -> tuple[UUID, str] | None:
    """``(organization id, address)`` when ``token`` was signed with one of ``keys``; else
    ``None`` (malformed, tampered with, or signed with a key no longer held)."""
    if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
        return None
    encoded, _, signature = token.partition(".")
    try:
        payload, mac = _unb64(encoded), _unb64(signature)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    if len(payload) <= 16 or not any(hmac.compare_digest(mac, _mac(k, payload)) for k in keys):
        return None
    try:
        address = payload[16:].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return UUID(bytes=payload[:16]), address
