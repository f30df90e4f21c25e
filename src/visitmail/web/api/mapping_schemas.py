"""Request and response bodies of the notification mapping API."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, JsonValue

from visitmail.domain.mail import Mailbox
from visitmail.domain.mapping import Problem, Trigger
from visitmail.domain.mapping_eval import PlanFailed, PlannedAction, PlannedEmail
from visitmail.domain.reports import Report
from visitmail.services.mapping import DryRun, InlineReport
from visitmail.services.notification_ports import StoredMapping
from visitmail.services.notifications import pdf_filename
from visitmail.services.reports import ReportInput
from visitmail.web.api.report_schemas import ConsentIn, LeadIn
from visitmail.web.api.schemas import Strict

DOCUMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "The whole mapping document (JSON; YAML is not accepted). See the module "
        "documentation of `visitmail.domain.mapping` for every field."
    ),
    "required": ["version", "rules"],
    "properties": {
        "version": {"type": "integer", "enum": [1]},
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "event", "on"],
                "properties": {
                    "name": {"type": "string"},
                    "event": {"type": "string", "description": '"*" or an event id'},
                    "on": {"type": "string", "enum": ["exported", "checked"]},
                    "when": {"type": "string"},
                    "actions": {"type": "array", "items": {"type": "object"}},
                    "switch": {"type": "object"},
                    "notify_every_export": {"type": "boolean"},
                    "enabled": {"type": "boolean"},
                    "description": {"type": "string"},
                },
            },
        },
    },
    "example": {
        "version": 1,
        "rules": [
            {
                "name": "Regional teams",
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
                                        "subject": "New lead: {{ lead.company }}",
                                        "body": "{{ lead.first_name }} {{ lead.last_name }}",
                                        "attach_pdf": True,
                                    }
                                }
                            ],
                        }
                    ],
                    "default": [
                        {
                            "email": {
                                "to": ["sales@acme.example"],
                                "subject": "New lead",
                                "body": "{{ lead.company }}",
                            }
                        }
                    ],
                },
            }
        ],
    },
}


class ProblemOut(BaseModel):
    field: str = Field(description="the path in the document, e.g. `rules[0].switch.value`")
    message: str

    @classmethod
    def of(cls, problem: Problem) -> ProblemOut:
        return cls(field=problem.path, message=problem.message)


class MappingInvalidDetail(BaseModel):
    code: str = Field(description="`mapping_invalid`, or `invalid` for a malformed body")
    message: str
    field: str | None = Field(description="the first problem's path")
    details: list[ProblemOut] = Field(
        default_factory=list,
        description="every problem, in document order (absent when the body is not JSON)",
    )


class MappingInvalidResponse(BaseModel):
    error: MappingInvalidDetail


class RevisionOut(BaseModel):
    """One revision, without its document (``GET …/revisions/{id}`` has it)."""

    id: UUID | None = Field(description="null: nothing saved yet (the empty mapping)")
    revision: int = Field(
        description="the revision's number: 1, 2, 3, … per organization; 0: nothing saved yet "
        "(what `expected_revision` and the dry run's `revision` refer to)"
    )
    active: bool
    rules: int = Field(description="how many rules the document has")
    created_at: datetime | None
    created_by: UUID | None
    activated_at: datetime | None = Field(description="when it last became the active one")

    @classmethod
    def fields_of(cls, stored: StoredMapping) -> dict[str, Any]:
        rules = stored.document.get("rules")
        return {
            "id": stored.id,
            "revision": stored.number,
            "active": stored.active,
            "rules": len(rules) if isinstance(rules, list) else 0,
            "created_at": stored.created_at,
            "created_by": stored.created_by,
            "activated_at": stored.activated_at,
        }

    @classmethod
    def of(cls, stored: StoredMapping) -> RevisionOut:
        return cls.model_validate(cls.fields_of(stored))


class MappingOut(RevisionOut):
    document: dict[str, JsonValue] = Field(description="the document exactly as saved")
    created: bool | None = Field(
        default=None,
        description="on PUT: false when the document equals the active one (nothing stored)",
    )

    @classmethod
    def of_stored(cls, stored: StoredMapping | None, *, created: bool | None = None) -> MappingOut:
        if stored is None:
            return cls(
                id=None,
                revision=0,
                active=True,
                rules=0,
                created_at=None,
                created_by=None,
                activated_at=None,
                document={"version": 1, "rules": []},
            )
        return cls.model_validate(
            {**RevisionOut.fields_of(stored), "document": dict(stored.document), "created": created}
        )


class ReporterIn(Strict):
    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=320)


class DryRunReportIn(Strict):
    """A report that is not stored. Validated like a captured one."""

    event_id: UUID | None = Field(
        default=None,
        description="the event's rules (and `*`) apply and answers are checked against it; "
        "omitted: only `*` rules apply",
    )
    lead: LeadIn = Field(default_factory=LeadIn)
    answers: dict[str, JsonValue] = Field(default_factory=dict)
    notes: str = Field(default="", max_length=20_000)
    consent: ConsentIn = Field(default_factory=ConsentIn)
    reporter: ReporterIn | None = Field(default=None, description="default: the caller")

    def to_inline(self) -> InlineReport:
        return InlineReport(
            data=ReportInput(
                lead=self.lead.values(),
                answers=self.answers,
                notes=self.notes,
                consent=self.consent.to_domain(),
            ),
            event_id=self.event_id,
            reporter=self.reporter.model_dump() if self.reporter is not None else None,
        )


class DryRunIn(Strict):
    trigger: Trigger = Trigger.EXPORTED
    report_id: UUID | None = Field(default=None, description="a stored report; or `report`")
    report: DryRunReportIn | None = Field(default=None, description="an inline report")
    document: dict[str, JsonValue] | None = Field(
        default=None,
        description="a draft mapping to try instead of the active one (validated, not saved)",
    )


class MailboxOut(BaseModel):
    address: str
    name: str


class EmailOut(BaseModel):
    sender: MailboxOut | None = Field(description="From; null: no SMTP settings, not queued")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    reply_to: str | None = Field(description="the action's reply_to, else the reporter")
    subject: str
    text: str
    html: str | None
    language: str
    attach_pdf: bool
    attachment: str | None = Field(description="the PDF's file name when attach_pdf")


class WebhookOut(BaseModel):
    url: str
    secret_ref: str
    payload: dict[str, JsonValue]


class PlannedOut(BaseModel):
    rule_index: int
    rule: str
    path: str = Field(description="the action in the document (the rule for a rule failure)")
    kind: str = Field(description="email | webhook | failed")
    idempotency_key: str | None
    email: EmailOut | None = None
    webhook: WebhookOut | None = None
    problems: list[ProblemOut] = Field(default_factory=list, description="why it failed")

    @classmethod
    def of(cls, plan: PlannedAction, report: Report, sender: Mailbox | None) -> PlannedOut:
        common: dict[str, Any] = {
            "rule_index": plan.rule_index,
            "rule": plan.rule_name,
            "path": plan.path,
            "idempotency_key": plan.idempotency_key,
        }
        if isinstance(plan, PlanFailed):
            return cls(kind="failed", problems=[ProblemOut.of(p) for p in plan.problems], **common)
        if isinstance(plan, PlannedEmail):
            reporter = str(report.reporter.get("email", "")).strip()
            return cls(
                kind="email",
                email=EmailOut(
                    sender=MailboxOut(address=sender.address, name=sender.name)
                    if sender is not None
                    else None,
                    to=list(plan.to),
                    cc=list(plan.cc),
                    bcc=list(plan.bcc),
                    reply_to=plan.reply_to or reporter or None,
                    subject=plan.subject,
                    text=plan.text,
                    html=plan.html,
                    language=plan.language,
                    attach_pdf=plan.attach_pdf,
                    attachment=pdf_filename(report) if plan.attach_pdf else None,
                ),
                **common,
            )
        return cls(
            kind="webhook",
            webhook=WebhookOut(url=plan.url, secret_ref=plan.secret_ref, payload=plan.payload),
            **common,
        )


class DryRunOut(BaseModel):
    trigger: Trigger
    revision: int | None = Field(
        description="the number of the active revision used (its `revision`); null: a draft "
        "or none saved"
    )
    draft: bool = Field(description="a draft `document` from the request was used")
    report_id: UUID = Field(description="the stored report's id (random for an inline one)")
    inline: bool
    actions: list[PlannedOut] = Field(description="in rule order; nothing was sent or stored")

    @classmethod
    def of(cls, run: DryRun, *, draft: bool) -> DryRunOut:
        return cls(
            trigger=run.trigger,
            revision=run.revision.number if run.revision is not None else None,
            draft=draft,
            report_id=run.report.id,
            inline=run.inline,
            actions=[PlannedOut.of(p, run.report, run.sender) for p in run.planned],
        )
