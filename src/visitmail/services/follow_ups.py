"""Use cases of follow-up emails to leads: templates, preview, one follow-up, bulk, and the
one-click unsubscribe.

Who may do what: ``event_curator`` and up read templates and preview them;
``event_manager`` and up write them. Every role sends a follow-up for a report it may see
(its own; every report from ``event_curator`` up); bulk is ``event_curator`` and up.

The rules of one follow-up, in order (:func:`send_follow_up`):

1. The template: the one in the lead's language when the event has it, else the one in
   the event's default (first) language; neither → ``no_template``.
2. Consent: when the organization requires it (``require_follow_up_consent``, on by
   default) and the report lacks ``consent.follow_up_email`` → ``no_consent``.
3. Never twice: a template already queued for this report → ``already_sent`` (with the
   first message), unless ``force``. Sends are remembered in ``follow_up_sends`` rather
   than only by the outbox's idempotency key, because the outbox purges finished messages
   after the retention period; the key (``follow-up:{report}:{template}``, ``…:{n}`` for
   the n-th forced send) still makes a retried request queue once. A template edited in
   place keeps its id: what was sent with it counts as sent.
4. Suppression: an address on the organization's suppression list → nothing is queued,
   the attempt is recorded as ``suppressed`` and the request succeeds with that status.
   Addresses land there through the unsubscribe link, and — the hook for permanent
   rejections, kept out of the delivery worker — when queuing finds an earlier follow-up
   in the outbox whose ``to`` recipient was ``rejected`` (5xx) at this address, with a
   reply about the address itself and after the address's latest lift: the address is
   added (reason ``rejected``, with that reply as the evidence) and the follow-up is
   suppressed. People manage the list in ``services/suppressions.py``.
5. Render (sandbox; a subject that renders a line break is refused naming ``subject``;
   a reporter without a name of their own signs with the organization's name:
   :func:`~visitmail.domain.follow_up.signed_by`), build the MIME once (From: the
   organization's sender; Reply-To: the reporter when the template says so, else the
   organization's reply-to; BCC to the reporter optionally; the template's media files
   attached; ``List-Unsubscribe`` + ``List-Unsubscribe-Post``), sign it with the
   organization's DKIM key when signing is on (``services/dkim.py``: the key is read and
   decrypted once per chunk, each message signed in the rendering thread), and enqueue in
   the same transaction as the send record.

The single request maps ``no_template`` and ``no_consent`` to :class:`Conflict` (codes
``no_template`` / ``no_consent``); bulk reports them per report and never raises for one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from visitmail.domain.errors import Conflict, InvalidInput, NotFound, VisitmailError
from visitmail.domain.events import Event, EventStatus, MediaItem, language_tag
from visitmail.domain.follow_up import (
    FollowUpStatus,
    FollowUpTemplate,
    FollowUpTemplateSpec,
    RenderedFollowUp,
    SuppressionReason,
    checked_template,
    choose_language,
    idempotency_key,
    render_follow_up,
    signed_by,
    suppression_address,
)
from visitmail.domain.follow_up_context import sample_answers
from visitmail.domain.identity import Principal
from visitmail.domain.mail import Attachment, Mailbox, MailSpec
from visitmail.domain.outbox import MessageKind
from visitmail.domain.reports import Consent, Report, ReportStatus, checked_lead
from visitmail.domain.roles import Role
from visitmail.domain.smtp_settings import SmtpSettings
from visitmail.domain.unsubscribe_texts import with_footer
from visitmail.services import outbox
from visitmail.services.clock import Clock, utcnow
from visitmail.services.dkim import DkimSigning
from visitmail.services.dkim_ports import MessageSigner
from visitmail.services.events import sees_drafts
from visitmail.services.follow_up_ports import (
    FollowUpSend,
    FollowUpUnitOfWork,
    MailRenderer,
    NewFollowUpSend,
    UnsubscribeLinks,
)
from visitmail.services.identity import require_role
from visitmail.services.outbox_ports import NewMessage, NewRecipient
from visitmail.services.reports import READ_ALL_ROLE

READ_ROLE = Role.EVENT_CURATOR
WRITE_ROLE = Role.EVENT_MANAGER
BULK_ROLE = Role.EVENT_CURATOR
MAX_BULK = 500


@dataclass(frozen=True, slots=True)
class FollowUpResult:
    """What one follow-up request came to. ``outbox_id`` is the queued message (for
    ``already_sent``: the first one)."""

    report_id: UUID
    status: FollowUpStatus
    outbox_id: UUID | None = None
    template_id: UUID | None = None
    language: str | None = None
    message: str | None = None
    field: str | None = None


@dataclass(frozen=True, slots=True)
class BulkResult:
    results: list[FollowUpResult]
    summary: dict[FollowUpStatus, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Senders:
    """What building a follow-up needs from outside: the MIME renderer, the signer of
    unsubscribe links and, when given, DKIM signing (``None``: mail is never signed)."""

    render: MailRenderer
    unsubscribe: UnsubscribeLinks
    dkim: DkimSigning | None = None


# --- templates ----------------------------------------------------------------------------


async def _event(uow: FollowUpUnitOfWork, actor: Principal, event_id: UUID) -> Event:
    event = await uow.events.get(actor.organization_id, event_id)
    if event is None or (event.status is EventStatus.DRAFT and not sees_drafts(actor)):
        raise NotFound("no such event")
    return event


def _event_language(event: Event, language: str) -> str:
    tag = language_tag(language, field="language")
    if tag not in event.languages:
        raise InvalidInput(
            f"is not one of the event's languages ({', '.join(event.languages)})",
            field="language",
        )
    return tag


async def put_template(
    uow: FollowUpUnitOfWork,
    actor: Principal,
    event_id: UUID,
    language: str,
    spec: FollowUpTemplateSpec,
    *,
    clock: Clock = utcnow,
) -> FollowUpTemplate:
    """Create or replace the event's template in ``language`` (event_manager+).

    Raises :class:`NotFound` (no such event), :class:`InvalidInput` naming ``language``
    (not one of the event's), ``subject`` / ``text`` / ``html`` (with the line of a
    sandbox problem) or ``attachments[i]`` (not a file of this event's media library)."""
    require_role(actor, WRITE_ROLE)
    event = await _event(uow, actor, event_id)
    tag = _event_language(event, language)
    valid = checked_template(spec)
    for i, media_id in enumerate(valid.attachments):
        if await uow.media.get(actor.organization_id, event.id, media_id) is None:
            raise InvalidInput(
                "no such file in the event's media library", field=f"attachments[{i}]"
            )
    now = clock()
    template = await uow.follow_up_templates.put(
        actor.organization_id, event.id, tag, valid, actor_id=actor.user.id, now=now
    )
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="follow_up_template.put",
        target=f"{event.id}:{tag}",
        fields=["subject", "text", "html", "attachments", "reply_to_reporter", "bcc_reporter"],
        now=now,
    )
    await uow.commit()
    return template


async def get_template(
    uow: FollowUpUnitOfWork, actor: Principal, event_id: UUID, language: str
) -> FollowUpTemplate:
    require_role(actor, READ_ROLE)
    event = await _event(uow, actor, event_id)
    tag = _event_language(event, language)
    template = await uow.follow_up_templates.get(actor.organization_id, event.id, tag)
    if template is None:
        raise NotFound(f"the event has no follow-up template in '{tag}'", code="no_template")
    return template


async def list_templates(
    uow: FollowUpUnitOfWork, actor: Principal, event_id: UUID
) -> Sequence[FollowUpTemplate]:
    require_role(actor, READ_ROLE)
    event = await _event(uow, actor, event_id)
    return await uow.follow_up_templates.list(actor.organization_id, event.id)


def sample_report(
    event: Event, lead: dict[str, str], organization_id: UUID, language: str | None = None
) -> Report:
    """A report that exists only for a preview: the given lead and a sample answer to each
    of the event's questions (:func:`~visitmail.domain.follow_up_context.sample_answers`)."""
    now = datetime.now(UTC)
    return Report(
        id=uuid.UUID(int=0),
        organization_id=organization_id,
        event_id=event.id,
        lead=checked_lead(lead),
        answers=sample_answers(event, language or event.default_language),
        notes="",
        consent=Consent(follow_up_email=True),
        status=ReportStatus.DRAFT,
        captured_by=uuid.UUID(int=0),
        captured_at=now,
        updated_at=now,
        reporter={"name": "Sample Reporter", "email": "reporter@example.com"},
    )


async def preview_template(
    uow: FollowUpUnitOfWork,
    actor: Principal,
    event_id: UUID,
    language: str,
    *,
    report_id: UUID | None = None,
    lead: dict[str, str] | None = None,
    spec: FollowUpTemplateSpec | None = None,
) -> RenderedFollowUp:
    """The stored template (or ``spec``, unsaved) rendered for a stored report of the event
    or a sample lead; nothing is sent. Raises :class:`NotFound` (event, report, template)
    and the render errors of :func:`render_follow_up`."""
    require_role(actor, READ_ROLE)
    event = await _event(uow, actor, event_id)
    tag = _event_language(event, language)
    if spec is not None:
        template_spec = checked_template(spec)
    else:
        stored = await uow.follow_up_templates.get(actor.organization_id, event.id, tag)
        if stored is None:
            raise NotFound(f"the event has no follow-up template in '{tag}'", code="no_template")
        template_spec = stored.spec
    if report_id is not None:
        found = await uow.reports.get(actor.organization_id, report_id)
        if found is None or found.event_id != event.id:
            raise NotFound("no such report of this event")
        organization = await uow.organizations.get(actor.organization_id)
        report = signed_by(found, organization.name if organization is not None else "")
    else:
        report = sample_report(event, lead or {}, actor.organization_id, tag)
    # Off the event loop: a template may spend its whole time budget (domain.sandbox), and
    # other requests must not wait for it.
    return await asyncio.to_thread(render_follow_up, template_spec, report, tag, event)


# --- sending ------------------------------------------------------------------------------

# Reports per chunk in bulk. A chunk reads everything it needs with a constant number of
# queries and writes with multi-row statements in one transaction; rendering runs off the
# event loop in between. 100 keeps that overhead negligible (a dozen statements per 100
# messages) while the first messages reach the outbox, and the workers, after 100 renders
# rather than after all 500.
CHUNK = 100

Outcome = FollowUpResult | VisitmailError


@dataclass(frozen=True, slots=True)
class _Planned:
    """A report that passed the rules up to suppression: to render and queue."""

    report: Report
    template: FollowUpTemplate
    address: str
    sequence: int
    base: FollowUpResult
    organization_name: str = ""  # named in the visible unsubscribe line
    event: Event | None = None  # for ``event``/``questions`` and the answers' labels


def _templates_by_event(
    templates: Sequence[FollowUpTemplate],
) -> dict[UUID, dict[str, FollowUpTemplate]]:
    by_event: dict[UUID, dict[str, FollowUpTemplate]] = {}
    for t in templates:
        by_event.setdefault(t.event_id, {})[t.language] = t
    return by_event


def _template_for(
    report: Report,
    events: dict[UUID, Event],
    templates: dict[UUID, dict[str, FollowUpTemplate]],
) -> FollowUpTemplate | None:
    """Rule 1: the lead's language when the event has a template in it, else the event's
    default language."""
    event = events.get(report.event_id)
    if event is None:
        return None
    by_language = templates.get(event.id, {})
    language = choose_language(report.lead.language, tuple(by_language), event.default_language)
    return by_language.get(language)


async def _queue_chunk(
    uow: FollowUpUnitOfWork,
    actor: Principal,
    report_ids: Sequence[UUID],
    *,
    force: bool,
    senders: Senders,
    clock: Clock,
) -> dict[UUID, Outcome]:
    """Apply the rules of the module docstring to distinct ``report_ids`` and commit what
    they queue and record; a report the actor may not see is :class:`NotFound`.

    Three steps, so that nothing waits on rendering: (1) the reads, one query each for the
    whole chunk, in a transaction that ends before (2) rendering and MIME building, which
    run in a worker thread with no transaction open (on SQLite an open transaction holds
    the database's write lock); (3) one write transaction: the suppression list is read
    again (an unsubscribe may have come in meanwhile), then the messages, their
    recipients, the send records and the addresses the rejection hook found go in with
    multi-row statements, and a key taken meanwhile (a concurrent request queued this very
    send) is ``already_sent``. Every rule is decided before the first write, so one
    report's error (its outcome) changes nothing for the others."""
    org = actor.organization_id
    outcomes: dict[UUID, Outcome] = {}
    planned = await plan_rules(uow, actor, report_ids, force=force, outcomes=outcomes)
    addresses = {suppression_address(p.address) for p in planned}
    listed = await uow.suppressions.listed(org, addresses) if planned else set()
    rejected = await uow.suppressions.rejected_among(org, addresses - listed) if planned else {}
    blocked = listed | rejected.keys()
    to_send = [p for p in planned if suppression_address(p.address) not in blocked]
    stored = await uow.smtp_settings.get(org) if to_send else None
    media_ids = {m for plan in to_send for m in plan.template.spec.attachments}
    media = await uow.follow_up_sources.media(org, media_ids) if stored else {}
    signer: MessageSigner | None = None
    unsignable: VisitmailError | None = None
    if stored is not None and senders.dkim is not None:
        try:  # once per chunk: one query, one decryption
            signer = await senders.dkim.load(uow, org, stored.settings.sender_email)
        except VisitmailError as exc:
            unsignable = exc  # a key no master key opens: send nothing unsigned by surprise
    await uow.commit()  # (1) done: no transaction stays open while rendering

    now = clock()
    built: list[NewMessage | VisitmailError] = []
    if to_send and stored is None:
        built = [_not_configured() for _ in to_send]
    elif to_send and unsignable is not None:
        built = [unsignable for _ in to_send]
    elif to_send and stored is not None:
        built = await asyncio.to_thread(
            _build_all, to_send, stored.settings, media, senders, org, now, signer
        )

    late = {suppression_address(p.address) for p in to_send}
    late = await uow.suppressions.listed(org, late) if late else set()
    if rejected:
        await uow.suppressions.add_many(
            org, rejected.keys(), SuppressionReason.REJECTED, now, refusals=rejected
        )
    suppressed = blocked | late
    records: list[NewFollowUpSend] = []
    ready: list[tuple[_Planned, NewMessage]] = []
    for plan in planned:
        if suppression_address(plan.address) in suppressed:
            records.append(
                NewFollowUpSend(
                    plan.report.id,
                    plan.template.id,
                    None,
                    FollowUpStatus.SUPPRESSED,
                    None,
                    plan.address,
                )
            )
            outcomes[plan.report.id] = _with(
                plan.base, FollowUpStatus.SUPPRESSED, "the address is on the suppression list"
            )
    for plan, message in zip(to_send, built, strict=True):
        if plan.report.id in outcomes:
            continue  # suppressed while it was rendered
        if isinstance(message, VisitmailError):
            outcomes[plan.report.id] = message
        else:
            ready.append((plan, message))
    records += await _enqueue(uow, ready, outcomes, now)
    await uow.follow_up_sends.record_many(org, records, actor_id=actor.user.id, now=now)
    await uow.commit()
    return outcomes


def _not_configured() -> Conflict:
    return Conflict(
        "the organization has no SMTP settings yet; an admin must set them up",
        code="not_configured",
    )


async def plan_rules(
    uow: FollowUpUnitOfWork,
    actor: Principal,
    report_ids: Sequence[UUID],
    *,
    force: bool,
    outcomes: dict[UUID, Outcome],
) -> list[_Planned]:
    """Rules 1 to 3 for the chunk (reads only, so a review may call it without sending:
    :mod:`~visitmail.services.follow_up_review`): the reports to suppress or send; the
    others get their outcome in ``outcomes``."""
    org = actor.organization_id
    found = await uow.follow_up_sources.reports(org, report_ids)
    visible: list[Report] = []
    for report_id in report_ids:
        report = found.get(report_id)
        if report is None or (
            report.captured_by != actor.user.id and not actor.role.at_least(READ_ALL_ROLE)
        ):
            outcomes[report_id] = NotFound("no such report")
        else:
            visible.append(report)
    if not visible:
        return []

    event_ids = {r.event_id for r in visible}
    events = await uow.follow_up_sources.events(org, event_ids)
    templates = _templates_by_event(await uow.follow_up_templates.for_events(org, event_ids))
    organization = await uow.organizations.get(org)
    requires_consent = organization is None or organization.require_follow_up_consent
    signer = organization.name if organization is not None else ""
    candidates: list[tuple[Report, FollowUpTemplate, FollowUpResult]] = []
    for report in (signed_by(r, signer) for r in visible):
        template = _template_for(report, events, templates)
        if template is None:
            outcomes[report.id] = FollowUpResult(
                report.id,
                FollowUpStatus.NO_TEMPLATE,
                message="the event has no follow-up template in the lead's or the default language",
            )
            continue
        base = FollowUpResult(
            report.id, FollowUpStatus.QUEUED, None, template.id, template.language
        )
        if requires_consent and not report.consent.follow_up_email:
            outcomes[report.id] = _with(
                base, FollowUpStatus.NO_CONSENT, "the lead did not consent to a follow-up email"
            )
        elif not report.lead.email:
            outcomes[report.id] = InvalidInput("the lead has no email address", field="lead.email")
        else:
            candidates.append((report, template, base))
    if not candidates:
        return []

    earlier: dict[tuple[UUID, UUID], list[FollowUpSend]] = {}
    for send in await uow.follow_up_sends.queued_for(org, [r.id for r, _, _ in candidates]):
        earlier.setdefault((send.report_id, send.template_id), []).append(send)
    planned: list[_Planned] = []
    for report, template, base in candidates:
        before = earlier.get((report.id, template.id), [])
        if before and not force:
            outcomes[report.id] = _with(
                base,
                FollowUpStatus.ALREADY_SENT,
                "this template was already sent to this lead; pass force to send it again",
                outbox_id=before[0].outbox_id,
            )
        else:
            planned.append(
                _Planned(
                    report,
                    template,
                    report.lead.email,
                    len(before) + 1,
                    base,
                    signer,
                    events.get(report.event_id),
                )
            )
    return planned


async def _enqueue(
    uow: FollowUpUnitOfWork,
    ready: list[tuple[_Planned, NewMessage]],
    outcomes: dict[UUID, Outcome],
    now: datetime,
) -> list[NewFollowUpSend]:
    """Queue the built messages in one go; the sends to record. A key taken meanwhile (a
    concurrent request queued this very send first) is ``already_sent``."""
    if not ready:
        return []
    # Each message went through outbox.checked in _build (per report, so one bad address
    # is that report's error): straight to the repository, not checked twice.
    enqueued = await uow.outbox.enqueue_many([m for _, m in ready], now)
    records: list[NewFollowUpSend] = []
    for (plan, _), result in zip(ready, enqueued, strict=True):
        if not result.created:
            outcomes[plan.report.id] = _with(
                plan.base,
                FollowUpStatus.ALREADY_SENT,
                "this template was already sent to this lead",
                outbox_id=result.id,
            )
            continue
        records.append(
            NewFollowUpSend(
                plan.report.id,
                plan.template.id,
                plan.sequence,
                FollowUpStatus.QUEUED,
                result.id,
                plan.address,
            )
        )
        outcomes[plan.report.id] = _with(
            plan.base, FollowUpStatus.QUEUED, None, outbox_id=result.id
        )
    return records


def _build_all(
    plans: Sequence[_Planned],
    settings: SmtpSettings,
    media: dict[UUID, tuple[MediaItem, bytes]],
    senders: Senders,
    org: UUID,
    now: datetime,
    signer: MessageSigner | None = None,
) -> list[NewMessage | VisitmailError]:
    """Rule 5 for each report (pure CPU, run in a worker thread): the checked outbox
    message, or the error that stops this report."""
    out: list[NewMessage | VisitmailError] = []
    for plan in plans:
        try:
            out.append(_build(plan, settings, media, senders, org, now, signer))
        except VisitmailError as exc:
            out.append(exc)
    return out


def _build(
    plan: _Planned,
    settings: SmtpSettings,
    media: dict[UUID, tuple[MediaItem, bytes]],
    senders: Senders,
    org: UUID,
    now: datetime,
    signer: MessageSigner | None = None,
) -> NewMessage:
    report, template, address = plan.report, plan.template, plan.address
    link = senders.unsubscribe.url(org, address, template.language)
    # The visible line carries the header's very URL: one link, one behaviour.
    rendered = with_footer(
        render_follow_up(template.spec, report, template.language, plan.event),
        link,
        template.language,
        plan.organization_name,
    )
    files: list[Attachment] = []
    for i, media_id in enumerate(template.spec.attachments):
        found = media.get(media_id)
        if found is None:
            raise InvalidInput(
                "a file of the template was deleted from the media library; edit the template",
                field=f"attachments[{i}]",
            )
        item, data = found
        files.append(Attachment(item.filename, item.content_type, data))
    reporter_email = str(report.reporter.get("email", "")).strip()
    reporter_name = str(report.reporter.get("name", "")).strip()
    if template.spec.reply_to_reporter and reporter_email:
        reply_to: Mailbox | None = Mailbox(reporter_email, reporter_name)
    elif settings.reply_to:
        reply_to = Mailbox(settings.reply_to)
    else:
        reply_to = None
    bcc = (reporter_email,) if template.spec.bcc_reporter and reporter_email else ()
    lead_name = " ".join(p for p in (report.lead.first_name, report.lead.last_name) if p)
    spec = MailSpec(
        sender=Mailbox(settings.sender_email, settings.sender_name or ""),
        to=(Mailbox(address, lead_name),),
        bcc=bcc,
        reply_to=reply_to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        attachments=files,
        headers=(
            ("List-Unsubscribe", f"<{link}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("X-Visitmail-Kind", "follow_up"),
            ("X-Visitmail-Report", str(report.id)),
            ("X-Visitmail-Template", str(template.id)),
        ),
        date=now,
    )
    built = senders.render(spec)
    roles = built.recipient_roles or ("to",) * len(built.envelope_recipients)
    return outbox.checked(
        NewMessage(
            organization_id=org,
            kind=MessageKind.FOLLOW_UP,
            idempotency_key=idempotency_key(report.id, template.id, plan.sequence),
            message_id=built.message_id,
            mail_from=built.envelope_from,
            subject=built.subject,
            mime=signer.sign(built.mime) if signer is not None else built.mime,
            recipients=[
                NewRecipient(a, r) for a, r in zip(built.envelope_recipients, roles, strict=True)
            ],
            meta={
                "report_id": str(report.id),
                "template_id": str(template.id),
                "language": template.language,
            },
        )
    )


def _with(
    base: FollowUpResult,
    status: FollowUpStatus,
    message: str | None,
    *,
    outbox_id: UUID | None = None,
) -> FollowUpResult:
    return FollowUpResult(
        base.report_id, status, outbox_id, base.template_id, base.language, message
    )


async def send_follow_up(
    uow: FollowUpUnitOfWork,
    actor: Principal,
    report_id: UUID,
    *,
    senders: Senders,
    force: bool = False,
    clock: Clock = utcnow,
) -> FollowUpResult:
    """Queue the follow-up of one report (any role, for a report it may see) and commit:
    the bulk path with a chunk of one.

    Returns the result with status ``queued``, ``already_sent`` or ``suppressed``. Raises
    :class:`NotFound` (no such report for this caller), :class:`Conflict` with code
    ``no_template``, ``no_consent`` or ``not_configured``, :class:`InvalidInput` naming
    ``lead.email`` (no address), ``subject`` / ``text`` / ``html`` (rendering failed) or
    ``attachments[i]`` (a file was deleted)."""
    outcomes = await _queue_chunk(
        uow, actor, [report_id], force=force, senders=senders, clock=clock
    )
    result = outcomes[report_id]
    if isinstance(result, VisitmailError):
        raise result
    if result.status in (FollowUpStatus.NO_TEMPLATE, FollowUpStatus.NO_CONSENT):
        raise Conflict(result.message or result.status.value, code=result.status.value)
    return result


async def bulk_follow_up(
    uow: FollowUpUnitOfWork,
    actor: Principal,
    report_ids: Sequence[UUID],
    *,
    senders: Senders,
    force: bool = False,
    clock: Clock = utcnow,
) -> BulkResult:
    """Queue follow-ups for up to :data:`MAX_BULK` reports (event_curator+), each by the
    rules of :func:`send_follow_up`, chunk by chunk (up to :data:`CHUNK` reports: a
    constant number of statements and one write transaction each, so the first messages
    are being delivered while later chunks render; one report's failure does not undo
    another's). Repeated ids count once. Never raises for one report: its status is
    ``error`` with the message."""
    require_role(actor, BULK_ROLE)
    if not report_ids:
        raise InvalidInput("at least one report id is required", field="report_ids")
    if len(report_ids) > MAX_BULK:
        raise InvalidInput(f"at most {MAX_BULK} reports at once", field="report_ids")
    results: list[FollowUpResult] = []
    summary = {status: 0 for status in FollowUpStatus}
    unique = list(dict.fromkeys(report_ids))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        outcomes = await _queue_chunk(uow, actor, chunk, force=force, senders=senders, clock=clock)
        for report_id in chunk:
            outcome = outcomes[report_id]
            if isinstance(outcome, VisitmailError):
                outcome = FollowUpResult(
                    report_id, FollowUpStatus.ERROR, message=outcome.message, field=outcome.field
                )
            results.append(outcome)
            summary[outcome.status] += 1
    return BulkResult(results, summary)


# --- unsubscribe --------------------------------------------------------------------------


async def unsubscribe(
    uow: FollowUpUnitOfWork, organization_id: UUID, address: str, *, clock: Clock = utcnow
) -> bool:
    """Put ``address`` on the organization's suppression list (the caller verified the
    signed token: there is no principal). Idempotent; True if it was added now."""
    added = await uow.suppressions.add(
        organization_id, suppression_address(address), SuppressionReason.UNSUBSCRIBED, clock()
    )
    await uow.commit()
    return added
