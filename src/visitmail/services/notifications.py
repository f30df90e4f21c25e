"""The notifications a report's export or check sends: the :class:`ReportTriggers` hook
that fires the organization's active notification mapping.

Runs inside the export/check transaction (see
:class:`~visitmail.services.report_ports.ReportTriggers`), so every queued notification is
committed together with the status change. For each action the mapping plans
(:func:`~visitmail.domain.mapping_eval.fire`):

* an email becomes one outbox message of kind ``notification``: From the organization's
  sender (its SMTP settings' ``sender_email`` / ``sender_name``), To/Cc/Bcc as planned,
  Reply-To the action's ``reply_to`` or else the reporter, ``X-Visitmail-Report``,
  ``Auto-Submitted: auto-generated``, and the report as a PDF when ``attach_pdf``. The MIME
  is built once, here, so every retry sends the same bytes; when the organization signs
  with DKIM (``services/dkim.py``) it is signed here too, the key read and decrypted once
  per export and each signature computed off the event loop;
* a webhook becomes one outbox message of kind ``webhook``: its "MIME" is the JSON payload
  (UTF-8), its one recipient the URL, its ``meta`` the URL, the secret's name and the
  content type (the worker signs and POSTs it);
* the outbox's idempotency key is the plan's (report, rule, trigger, action, and the
  report's revision under ``notify_every_export``): exporting again reports the action as
  a ``duplicate`` and queues nothing.

Nothing here makes the export fail. An action that cannot be sent (a template error, a
CR/LF rendered into a header, an invalid address, no SMTP settings, no PDF font) is
returned as a :class:`NotificationFailed` (``kind`` ``"failed"``, ``rule`` naming the rule
and saying why) and nothing of it is queued; the other actions are queued regardless, and
since the failed action's key was not used, a later export tries it again.

Without SMTP settings emails are *not* queued (their From would be unknown and the MIME,
fixed at enqueue time, would carry a wrong sender forever); webhooks are.

Two steps, so that no write transaction waits for rendering: :meth:`MappingTriggers.prepare`
reads (mapping, event, SMTP settings) and renders everything (templates, the PDF, the MIME)
in a *read* unit of work, before the export's write transaction begins;
:meth:`MappingTriggers.fired_prepared` then only enqueues, inside it. ``fired`` does both in
the caller's unit of work (the plain path, used when nothing was prepared or the report
changed in between).
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from visitmail.domain.errors import Conflict, InvalidInput
from visitmail.domain.events import Event, QuestionType
from visitmail.domain.mail import Attachment, Mailbox, MailSpec
from visitmail.domain.mail_view import LETTER_FOLDS
from visitmail.domain.mapping import (
    EMPTY_MAPPING,
    MappingInvalid,
    NotificationMapping,
    Problem,
    Trigger,
    parse_mapping,
)
from visitmail.domain.mapping_eval import (
    DEFAULT_LANGUAGE,
    PlanFailed,
    PlannedEmail,
    PlannedWebhook,
    fire,
)
from visitmail.domain.outbox import MessageKind
from visitmail.domain.reports import Report
from visitmail.domain.salutation import primary_language
from visitmail.services import outbox
from visitmail.services.clock import Clock, utcnow
from visitmail.services.dkim import DkimSigning
from visitmail.services.dkim_ports import MessageSigner
from visitmail.services.notification_ports import (
    MailRenderer,
    NotificationsUnitOfWork,
    PdfUnavailable,
    ReportPdf,
)
from visitmail.services.outbox_ports import NewMessage, NewRecipient
from visitmail.services.report_ports import FiredNotification, ReportTrigger
from visitmail.services.reports import Prepared

WEBHOOK_CONTENT_TYPE = "application/json"
MAX_CACHED_MAPPINGS = 256
FAILED = "failed"

_YES_NO = {"de": ("Ja", "Nein"), "en": ("Yes", "No")}
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class NotificationFailed(FiredNotification):
    """An action (or a whole rule) that was not queued, and why: ``kind`` is ``"failed"``,
    ``rule`` names the rule, ``error`` says why (with the mapping path)."""

    path: str = ""
    problems: tuple[Problem, ...] = ()

    @property
    def message(self) -> str:
        return "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in self.problems)


def _failed(rule_name: str, path: str, problems: Sequence[Problem]) -> NotificationFailed:
    text = "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in problems)
    return NotificationFailed(
        rule=rule_name,
        kind=FAILED,
        outbox_id=None,
        error=text,
        path=path,
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class _Ready:
    """An action rendered and ready to enqueue."""

    rule: str
    path: str
    kind: str  # "email" | "webhook"
    recipients: tuple[str, ...]
    message: NewMessage


_Planned = _Ready | NotificationFailed


@dataclass(frozen=True, slots=True)
class PreparedNotifications:
    """What :meth:`MappingTriggers.prepare` made for ``report`` (as it will be written)."""

    report: Report
    trigger: ReportTrigger
    items: list[_Planned]


# --- the report PDF ----------------------------------------------------------------------


def _label(labels: dict[str, str] | object, language: str, event: Event | None) -> str | None:
    if not isinstance(labels, dict) or not labels:
        return None
    primary = primary_language(language) or language
    for tag in (language, primary, event.default_language if event else None):
        if tag and labels.get(tag):
            return str(labels[tag])
    return str(next(iter(labels.values())))


def _format_number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def format_answers(
    event: Event | None, answers: dict[str, object], language: str
) -> list[tuple[str, str]]:
    """``(question label, answer)`` in questionnaire order, in ``language`` (labels fall
    back to the event's default language, then to any); options by their labels, booleans
    as words; answers to questions the event no longer has come last, under their key."""
    yes, no = _YES_NO.get(primary_language(language) or "", _YES_NO["en"])
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    questions = event.questions if event is not None else ()
    for question in questions:
        if question.key not in answers:
            continue
        seen.add(question.key)
        value = answers[question.key]
        label = _label(dict(question.label), language, event) or question.key
        options = {o.key: _label(dict(o.label), language, event) or o.key for o in question.options}
        if question.type is QuestionType.BOOL and isinstance(value, bool):
            text = yes if value else no
        elif question.type is QuestionType.SINGLE and isinstance(value, str):
            text = options.get(value, value)
        elif question.type is QuestionType.MULTI and isinstance(value, list):
            text = ", ".join(options.get(str(v), str(v)) for v in value)
        elif isinstance(value, float):
            text = _format_number(value)
        else:
            text = str(value)
        out.append((label, text))
    for key, value in answers.items():
        if key not in seen:
            if isinstance(value, bool):
                text = yes if value else no
            elif isinstance(value, list):
                text = ", ".join(map(str, value))
            else:
                text = str(value)
            out.append((key, text))
    return out


def pdf_filename(report: Report) -> str:
    """``report-<company>-<date>.pdf`` in safe ASCII (accents folded, everything else
    a dash); the lead's last name when there is no company."""
    lead = report.lead
    name = lead.company or lead.last_name or "lead"
    # ß → ss, æ → ae, ł → l first: NFKD alone would drop them (issue 12)
    folded = unicodedata.normalize("NFKD", name.translate(LETTER_FOLDS))
    folded = folded.encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE_FILENAME.sub("-", folded).strip("-")[:60].strip("-") or "lead"
    return f"report-{slug}-{report.captured_at.date().isoformat()}.pdf"


# --- the hook ----------------------------------------------------------------------------


class MappingTriggers:
    """The :class:`~visitmail.services.report_ports.ReportTriggers` of the notification
    mapping. One instance serves every request: it caches parsed mappings by revision id
    (revisions never change)."""

    def __init__(
        self,
        renderer: MailRenderer,
        pdf: ReportPdf,
        *,
        clock: Clock = utcnow,
        dkim: DkimSigning | None = None,
    ) -> None:
        self._renderer = renderer
        self._pdf = pdf
        self._clock = clock
        self._dkim = dkim
        self._parsed: OrderedDict[UUID, NotificationMapping] = OrderedDict()

    def with_dkim(self, dkim: DkimSigning | None) -> MappingTriggers:
        """This hook signing with ``dkim`` (sharing the parsed-mapping cache)."""
        other = MappingTriggers(self._renderer, self._pdf, clock=self._clock, dkim=dkim)
        other._parsed = self._parsed
        return other

    async def _mapping(
        self, uow: NotificationsUnitOfWork, organization_id: UUID
    ) -> NotificationMapping:
        stored = await uow.mappings.active(organization_id)
        if stored is None:
            return EMPTY_MAPPING
        cached = self._parsed.get(stored.id)
        if cached is not None:
            self._parsed.move_to_end(stored.id)
            return cached
        parsed = parse_mapping(dict(stored.document))
        self._parsed[stored.id] = parsed
        while len(self._parsed) > MAX_CACHED_MAPPINGS:
            self._parsed.popitem(last=False)
        return parsed

    async def fired(
        self, uow: NotificationsUnitOfWork, report: Report, trigger: ReportTrigger
    ) -> list[FiredNotification]:
        """Queue what the active mapping fires for ``report`` on ``trigger``; see the
        module doc. Raises nothing for a problem of one action or of the mapping."""
        return await self._enqueue(uow, await self._plan(uow, report, trigger))

    async def prepare(
        self, uow: NotificationsUnitOfWork, report: Report, trigger: ReportTrigger
    ) -> PreparedNotifications:
        """Everything :meth:`fired` would queue for ``report`` (as it will be after the
        status change), read and rendered but not queued; ``uow`` may be read-only."""
        return PreparedNotifications(report, trigger, await self._plan(uow, report, trigger))

    async def fired_prepared(
        self, uow: NotificationsUnitOfWork, prepared: Prepared
    ) -> list[FiredNotification]:
        """Queue what :meth:`prepare` made (the caller checked that ``prepared.report`` is
        the report as written)."""
        assert isinstance(prepared, PreparedNotifications)
        return await self._enqueue(uow, prepared.items)

    async def _plan(
        self, uow: NotificationsUnitOfWork, report: Report, trigger: ReportTrigger
    ) -> list[_Planned]:
        try:
            mapping = await self._mapping(uow, report.organization_id)
        except MappingInvalid as exc:
            return [_failed("the active mapping", "", exc.problems)]
        event = await uow.events.get(report.organization_id, report.event_id)
        default_language = event.default_language if event is not None else DEFAULT_LANGUAGE
        planned = fire(mapping, report, Trigger(trigger.value), default_language=default_language)
        if not planned:
            return []
        stored_settings = await uow.smtp_settings.get(report.organization_id)
        sender = None
        if stored_settings is not None:
            settings = stored_settings.settings
            sender = Mailbox(settings.sender_email, settings.sender_name or "")
        signer: MessageSigner | None = None
        unsignable: Conflict | None = None
        emails = any(isinstance(p, PlannedEmail) for p in planned)
        if sender is not None and self._dkim is not None and emails:
            try:  # once per export, not per email
                signer = await self._dkim.load(uow, report.organization_id, sender.address)
            except Conflict as exc:
                unsignable = exc
        out: list[_Planned] = []
        for plan in planned:
            if isinstance(plan, PlanFailed):
                out.append(_failed(plan.rule_name, plan.path, plan.problems))
            elif isinstance(plan, PlannedWebhook):
                out.append(self._webhook(report, plan, sender))
            elif sender is None:
                out.append(
                    _failed(
                        plan.rule_name,
                        plan.path,
                        [
                            Problem(
                                plan.path,
                                "the organization has no SMTP settings: the email was not "
                                "queued (configure them and export again)",
                            )
                        ],
                    )
                )
            elif unsignable is not None:
                out.append(
                    _failed(
                        plan.rule_name,
                        plan.path,
                        [Problem(plan.path, f"the email cannot be DKIM-signed: {unsignable}")],
                    )
                )
            else:
                out.append(await self._email(report, event, plan, sender, signer))
        return out

    async def _enqueue(
        self, uow: NotificationsUnitOfWork, items: Sequence[_Planned]
    ) -> list[FiredNotification]:
        out: list[FiredNotification] = []
        for item in items:
            if isinstance(item, NotificationFailed):
                out.append(item)
                continue
            try:
                enqueued = await outbox.enqueue(uow, item.message, clock=self._clock)
            except InvalidInput as exc:
                where = f"{item.path}.{item.kind}"
                if exc.field and item.kind == "email":
                    where = f"{where}.{exc.field}"
                out.append(_failed(item.rule, item.path, [Problem(where, exc.message)]))
                continue
            out.append(
                FiredNotification(
                    rule=item.rule,
                    kind=item.kind,
                    outbox_id=enqueued.id,
                    recipients=item.recipients,
                    duplicate=not enqueued.created,
                )
            )
        return out

    async def _email(
        self,
        report: Report,
        event: Event | None,
        plan: PlannedEmail,
        sender: Mailbox,
        signer: MessageSigner | None = None,
    ) -> _Planned:
        shown = (*plan.to, *plan.cc)
        try:
            attachments: list[Attachment] = []
            if plan.attach_pdf:
                questions = format_answers(event, dict(report.answers), plan.language)
                data = await self._pdf.render(
                    report, event.name if event else "", questions, plan.language
                )
                attachments.append(Attachment(pdf_filename(report), "application/pdf", data))
            spec = MailSpec(
                sender=sender,
                to=[Mailbox(a) for a in plan.to],
                cc=[Mailbox(a) for a in plan.cc],
                bcc=plan.bcc,
                reply_to=self._reply_to(report, plan),
                subject=plan.subject,
                text=plan.text,
                html=plan.html,
                attachments=attachments,
                headers=[
                    ("X-Visitmail-Report", str(report.id)),
                    ("X-Visitmail-Event", str(report.event_id)),
                    ("X-Visitmail-Kind", MessageKind.NOTIFICATION.value),
                    ("Auto-Submitted", "auto-generated"),
                    ("X-Auto-Response-Suppress", "All"),
                ],
            )
            built = self._renderer.build(spec)
            mime = built.mime
            if signer is not None:  # RSA costs milliseconds: not on the event loop
                mime = await asyncio.to_thread(signer.sign, mime)
            roles = built.recipient_roles or ("to",) * len(built.envelope_recipients)
            message = NewMessage(
                organization_id=report.organization_id,
                kind=MessageKind.NOTIFICATION,
                idempotency_key=plan.idempotency_key,
                message_id=built.message_id,
                mail_from=built.envelope_from,
                subject=built.subject,
                mime=mime,
                recipients=[
                    NewRecipient(a, r)
                    for a, r in zip(built.envelope_recipients, roles, strict=True)
                ],
                meta={"report_id": str(report.id), "rule": plan.path},
            )
        except InvalidInput as exc:
            where = f"{plan.path}.email.{exc.field}" if exc.field else f"{plan.path}.email"
            return _failed(plan.rule_name, plan.path, [Problem(where, exc.message)])
        except Conflict as exc:  # the key cannot sign
            return _failed(plan.rule_name, plan.path, [Problem(f"{plan.path}.email", exc.message)])
        except PdfUnavailable as exc:
            return _failed(
                plan.rule_name,
                plan.path,
                [Problem(f"{plan.path}.email.attach_pdf", f"the PDF cannot be rendered: {exc}")],
            )
        return _Ready(plan.rule_name, plan.path, "email", shown, message)

    @staticmethod
    def _reply_to(report: Report, plan: PlannedEmail) -> Mailbox | None:
        if plan.reply_to:
            return Mailbox(plan.reply_to)
        address = str(report.reporter.get("email", "")).strip()
        if not address:
            return None
        return Mailbox(address, str(report.reporter.get("name", "")).strip())

    def _webhook(self, report: Report, plan: PlannedWebhook, sender: Mailbox | None) -> _Planned:
        body = json.dumps(plan.payload, ensure_ascii=False, separators=(",", ":")).encode()
        # An outbox row needs a Message-ID and an envelope sender even for a webhook: a
        # fixed, unique id (the receiver may de-duplicate on it) under the sender's domain.
        domain = sender.address.rsplit("@", 1)[1] if sender is not None else "visitmail.example"
        mail_from = sender.address if sender is not None else f"webhook@{domain}"
        message = NewMessage(
            organization_id=report.organization_id,
            kind=MessageKind.WEBHOOK,
            idempotency_key=plan.idempotency_key,
            message_id=f"<webhook.{uuid.uuid4().hex}@{domain}>",
            mail_from=mail_from,
            subject=f"report.{plan.trigger.value} {report.id}",
            mime=body,
            recipients=[NewRecipient(plan.url, "to")],
            meta={
                "url": plan.url,
                "secret_ref": plan.secret_ref,
                "content_type": WEBHOOK_CONTENT_TYPE,
            },
        )
        return _Ready(plan.rule_name, plan.path, "webhook", (plan.url,), message)
