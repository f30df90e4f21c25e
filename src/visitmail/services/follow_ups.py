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
   in the outbox whose ``to`` recipient was ``rejected`` (5xx) at this address: the
   address is added (reason ``rejected``) and the follow-up is suppressed.
5. Render (sandbox; a subject that renders a line break is refused naming ``subject``),
   build the MIME once (From: the organization's sender; Reply-To: the reporter when the
   template says so, else the organization's reply-to; BCC to the reporter optionally;
   the template's media files attached; ``List-Unsubscribe`` + ``List-Unsubscribe-Post``),
   and enqueue in the same transaction as the send record.

The single request maps ``no_template`` and ``no_consent`` to :class:`Conflict` (codes
``no_template`` / ``no_consent``); bulk reports them per report and never raises for one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from visitmail.domain.errors import Conflict, InvalidInput, NotFound, VisitmailError
from visitmail.domain.events import Event, EventStatus, language_tag
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
    suppression_address,
)
from visitmail.domain.identity import Principal
from visitmail.domain.mail import Attachment, Mailbox, MailSpec
from visitmail.domain.outbox import MessageKind
from visitmail.domain.reports import Consent, Report, ReportStatus, checked_lead
from visitmail.domain.roles import Role
from visitmail.services import outbox
from visitmail.services.clock import Clock, utcnow
from visitmail.services.events import sees_drafts
from visitmail.services.follow_up_ports import (
    FollowUpUnitOfWork,
    MailRenderer,
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
    """What building a follow-up needs from outside: the MIME renderer and the signer of
    unsubscribe links."""

    render: MailRenderer
    unsubscribe: UnsubscribeLinks


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


def sample_report(event: Event, lead: dict[str, str], organization_id: UUID) -> Report:
    """A report that exists only for a preview: the given lead, no answers."""
    now = datetime.now(UTC)
    return Report(
        id=uuid.UUID(int=0),
        organization_id=organization_id,
        event_id=event.id,
        lead=checked_lead(lead),
        answers={},
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
        report = await uow.reports.get(actor.organization_id, report_id)
        if report is None or report.event_id != event.id:
            raise NotFound("no such report of this event")
    else:
        report = sample_report(event, lead or {}, actor.organization_id)
    return render_follow_up(template_spec, report, tag)


# --- sending ------------------------------------------------------------------------------


async def _visible_report(uow: FollowUpUnitOfWork, actor: Principal, report_id: UUID) -> Report:
    report = await uow.reports.get(actor.organization_id, report_id)
    if report is None or (
        report.captured_by != actor.user.id and not actor.role.at_least(READ_ALL_ROLE)
    ):
        raise NotFound("no such report")
    return report


async def _template_for(uow: FollowUpUnitOfWork, report: Report) -> FollowUpTemplate | None:
    event = await uow.events.get(report.organization_id, report.event_id)
    if event is None:
        return None
    templates = await uow.follow_up_templates.list(report.organization_id, event.id)
    by_language = {t.language: t for t in templates}
    language = choose_language(report.lead.language, tuple(by_language), event.default_language)
    return by_language.get(language)


async def _suppressed(
    uow: FollowUpUnitOfWork, organization_id: UUID, address: str, now: datetime
) -> bool:
    if await uow.suppressions.get(organization_id, address) is not None:
        return True
    if await uow.suppressions.rejected_before(organization_id, address):
        # The permanent-rejection hook (see the module docstring): put it on the list.
        await uow.suppressions.add(organization_id, address, SuppressionReason.REJECTED, now)
        return True
    return False


async def _attachments(
    uow: FollowUpUnitOfWork, organization_id: UUID, media_ids: Sequence[UUID]
) -> list[Attachment]:
    files: list[Attachment] = []
    for i, media_id in enumerate(media_ids):
        found = await uow.media.content(organization_id, media_id)
        if found is None:
            raise InvalidInput(
                "a file of the template was deleted from the media library; edit the template",
                field=f"attachments[{i}]",
            )
        item, data = found
        files.append(Attachment(item.filename, item.content_type, data))
    return files


async def _queue(
    uow: FollowUpUnitOfWork,
    actor: Principal,
    report: Report,
    *,
    force: bool,
    senders: Senders,
    clock: Clock,
) -> FollowUpResult:
    """Apply the rules of the module docstring to one report; writes, never commits.
    Everything that can fail is checked before the first write."""
    org = actor.organization_id
    template = await _template_for(uow, report)
    if template is None:
        return FollowUpResult(
            report.id,
            FollowUpStatus.NO_TEMPLATE,
            message="the event has no follow-up template in the lead's or the default language",
        )
    base = FollowUpResult(report.id, FollowUpStatus.QUEUED, None, template.id, template.language)
    organization = await uow.organizations.get(report.organization_id)
    requires_consent = organization is None or organization.require_follow_up_consent
    if requires_consent and not report.consent.follow_up_email:
        return _with(
            base, FollowUpStatus.NO_CONSENT, "the lead did not consent to a follow-up email"
        )
    address = report.lead.email
    if not address:
        raise InvalidInput("the lead has no email address", field="lead.email")
    earlier = await uow.follow_up_sends.sent(org, report.id, template.id)
    if earlier and not force:
        return _with(
            base,
            FollowUpStatus.ALREADY_SENT,
            "this template was already sent to this lead; pass force to send it again",
            outbox_id=earlier[0].outbox_id,
        )
    now = clock()
    if await _suppressed(uow, org, suppression_address(address), now):
        await uow.follow_up_sends.record(
            org,
            report_id=report.id,
            template_id=template.id,
            sequence=None,
            status=FollowUpStatus.SUPPRESSED,
            outbox_id=None,
            address=address,
            actor_id=actor.user.id,
            now=now,
        )
        return _with(base, FollowUpStatus.SUPPRESSED, "the address is on the suppression list")

    stored = await uow.smtp_settings.get(org)
    if stored is None:
        raise Conflict(
            "the organization has no SMTP settings yet; an admin must set them up",
            code="not_configured",
        )
    settings = stored.settings
    rendered = render_follow_up(template.spec, report, template.language)
    files = await _attachments(uow, org, template.spec.attachments)
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
    link = senders.unsubscribe.url(org, address)
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
    sequence = len(earlier) + 1
    roles = built.recipient_roles or ("to",) * len(built.envelope_recipients)
    enqueued = await outbox.enqueue(
        uow,
        NewMessage(
            organization_id=org,
            kind=MessageKind.FOLLOW_UP,
            idempotency_key=idempotency_key(report.id, template.id, sequence),
            message_id=built.message_id,
            mail_from=built.envelope_from,
            subject=built.subject,
            mime=built.mime,
            recipients=[
                NewRecipient(a, r) for a, r in zip(built.envelope_recipients, roles, strict=True)
            ],
            meta={
                "report_id": str(report.id),
                "template_id": str(template.id),
                "language": template.language,
            },
        ),
        clock=lambda: now,
    )
    if not enqueued.created:  # a concurrent request queued this very send first
        return _with(
            base,
            FollowUpStatus.ALREADY_SENT,
            "this template was already sent to this lead",
            outbox_id=enqueued.id,
        )
    await uow.follow_up_sends.record(
        org,
        report_id=report.id,
        template_id=template.id,
        sequence=sequence,
        status=FollowUpStatus.QUEUED,
        outbox_id=enqueued.id,
        address=address,
        actor_id=actor.user.id,
        now=now,
    )
    return _with(base, FollowUpStatus.QUEUED, None, outbox_id=enqueued.id)


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
    """Queue the follow-up of one report (any role, for a report it may see) and commit.

    Returns the result with status ``queued``, ``already_sent`` or ``suppressed``. Raises
    :class:`NotFound` (no such report for this caller), :class:`Conflict` with code
    ``no_template``, ``no_consent`` or ``not_configured``, :class:`InvalidInput` naming
    ``lead.email`` (no address), ``subject`` / ``text`` / ``html`` (rendering failed) or
    ``attachments[i]`` (a file was deleted)."""
    report = await _visible_report(uow, actor, report_id)
    result = await _queue(uow, actor, report, force=force, senders=senders, clock=clock)
    if result.status in (FollowUpStatus.NO_TEMPLATE, FollowUpStatus.NO_CONSENT):
        raise Conflict(result.message or result.status.value, code=result.status.value)
    await uow.commit()
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
    rules of :func:`send_follow_up`, committing report by report (progress shows in the
    outbox at once; one report's failure does not undo another's). Repeated ids count
    once. Never raises for one report: its status is ``error`` with the message."""
    require_role(actor, BULK_ROLE)
    if not report_ids:
        raise InvalidInput("at least one report id is required", field="report_ids")
    if len(report_ids) > MAX_BULK:
        raise InvalidInput(f"at most {MAX_BULK} reports at once", field="report_ids")
    results: list[FollowUpResult] = []
    summary = {status: 0 for status in FollowUpStatus}
    for report_id in dict.fromkeys(report_ids):
        try:
            report = await _visible_report(uow, actor, report_id)
            result = await _queue(uow, actor, report, force=force, senders=senders, clock=clock)
            await uow.commit()
        except VisitmailError as exc:
            # _queue checks everything before its first write: nothing of this report
            # is pending in the transaction, and the next report goes on.
            result = FollowUpResult(
                report_id, FollowUpStatus.ERROR, message=exc.message, field=exc.field
            )
        results.append(result)
        summary[result.status] += 1
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
