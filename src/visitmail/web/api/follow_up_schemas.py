"""Request and response bodies of the follow-up API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from visitmail.domain.follow_up import (
    FollowUpStatus,
    FollowUpTemplate,
    FollowUpTemplateSpec,
    RenderedFollowUp,
)
from visitmail.services.follow_ups import MAX_BULK, BulkResult, FollowUpResult
from visitmail.web.api.report_schemas import LeadIn
from visitmail.web.api.schemas import Strict


class TemplateIn(Strict):
    """A follow-up template. Placeholders are those of the notification mapping's
    templates (`{{ salutation }}`, `{{ lead.last_name }}`, `{{ reporter.name }}`,
    `{{ answers.<key> }}`, …); a sandbox problem answers 422 naming `subject`, `text` or
    `html` with the line."""

    subject: str = Field(max_length=1000, description="one line; rendered, CR/LF refused")
    text: str = Field(max_length=100_000, description="the plain-text body")
    html: str | None = Field(default=None, max_length=100_000, description="optional HTML body")
    attachments: list[UUID] = Field(
        default_factory=list, max_length=10, description="media ids of the event's library"
    )
    reply_to_reporter: bool = Field(
        default=True, description="Reply-To the reporter; else the organization's reply_to"
    )
    bcc_reporter: bool = Field(default=False, description="a blind copy to the reporter")

    def to_domain(self) -> FollowUpTemplateSpec:
        return FollowUpTemplateSpec(
            subject=self.subject,
            text=self.text,
            html=self.html,
            attachments=tuple(self.attachments),
            reply_to_reporter=self.reply_to_reporter,
            bcc_reporter=self.bcc_reporter,
        )


class TemplateOut(BaseModel):
    id: UUID
    event_id: UUID
    language: str
    subject: str
    text: str
    html: str | None
    attachments: list[UUID]
    reply_to_reporter: bool
    bcc_reporter: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, t: FollowUpTemplate) -> TemplateOut:
        return cls(
            id=t.id,
            event_id=t.event_id,
            language=t.language,
            subject=t.spec.subject,
            text=t.spec.text,
            html=t.spec.html,
            attachments=list(t.spec.attachments),
            reply_to_reporter=t.spec.reply_to_reporter,
            bcc_reporter=t.spec.bcc_reporter,
            created_at=t.created_at,
            updated_at=t.updated_at,
        )


class PreviewIn(Strict):
    """Render against a stored report of the event (`report_id`) or a sample `lead`; with
    `template`, that unsaved template instead of the stored one."""

    report_id: UUID | None = None
    lead: LeadIn | None = None
    template: TemplateIn | None = None


class PreviewOut(BaseModel):
    subject: str
    text: str
    html: str | None

    @classmethod
    def of(cls, r: RenderedFollowUp) -> PreviewOut:
        return cls(subject=r.subject, text=r.text, html=r.html)


class FollowUpIn(Strict):
    force: bool = Field(default=False, description="send again even if already sent")


class FollowUpOut(BaseModel):
    report_id: UUID
    status: FollowUpStatus
    message_id: UUID | None = Field(
        default=None,
        description="the queued outbox message (`GET /api/v1/messages/{message_id}`)",
    )
    template_id: UUID | None = None
    language: str | None = None
    message: str | None = None
    field: str | None = None

    @classmethod
    def of(cls, r: FollowUpResult) -> FollowUpOut:
        return cls(
            report_id=r.report_id,
            status=r.status,
            message_id=r.outbox_id,
            template_id=r.template_id,
            language=r.language,
            message=r.message,
            field=r.field,
        )


class BulkIn(Strict):
    report_ids: list[UUID] = Field(min_length=1, max_length=MAX_BULK)
    force: bool = False


class BulkOut(BaseModel):
    results: list[FollowUpOut]
    summary: dict[FollowUpStatus, int]

    @classmethod
    def of(cls, r: BulkResult) -> BulkOut:
        return cls(results=[FollowUpOut.of(x) for x in r.results], summary=dict(r.summary))


class UnsubscribedOut(BaseModel):
    status: str = "unsubscribed"
