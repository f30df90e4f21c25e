"""Bodies of the sender-domain check (``GET /api/v1/smtp-settings/domain-check`` and the
``domain`` block of the connection test)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from visitmail.domain.sender_domain import (
    BulkRequirement,
    Check,
    DomainReport,
    RecordChange,
    Verdict,
)


class RecordChangeOut(BaseModel):
    action: str = Field(description="add | replace")
    type: str = Field(description="TXT | CNAME")
    name: str
    value: str = Field(description="<placeholders> are values only the provider knows")
    replaces: list[str] = Field(description="the published records this one replaces")
    note: str | None = Field(description="where to get the values")

    @classmethod
    def of(cls, r: RecordChange) -> RecordChangeOut:
        return cls(
            action=r.action,
            type=r.type,
            name=r.name,
            value=r.value,
            replaces=list(r.replaces),
            note=r.note,
        )


class DomainCheckItemOut(BaseModel):
    name: str = Field(description="spf | dkim | dmarc")
    verdict: Verdict
    summary: str
    explanation: str
    found: list[str] = Field(description="the published records the verdict is about")
    records: list[RecordChangeOut] = Field(description="what to publish to fix it")
    details: dict[str, str | int | list[str]]

    @classmethod
    def of(cls, c: Check) -> DomainCheckItemOut:
        return cls(
            name=c.name,
            verdict=c.verdict,
            summary=c.summary,
            explanation=c.explanation,
            found=list(c.found),
            records=[RecordChangeOut.of(r) for r in c.records],
            details=dict(c.details),
        )


class BulkRequirementOut(BaseModel):
    name: str
    met: bool | None = Field(description="null: cannot tell")
    explanation: str

    @classmethod
    def of(cls, b: BulkRequirement) -> BulkRequirementOut:
        return cls(name=b.name, met=b.met, explanation=b.explanation)


class DomainCheckOut(BaseModel):
    domain: str
    provider: str | None = Field(description="the preset id judged for; null: another server")
    provider_name: str | None
    verdict: Verdict = Field(description="the worst of the checks")
    checks: list[DomainCheckItemOut] = Field(description="spf, dkim, dmarc")
    bulk_applies: bool | None = Field(
        description="more than 5,000 messages a day (limits.per_day); null: no daily limit set"
    )
    bulk: list[BulkRequirementOut] = Field(
        description="Gmail, Yahoo and Outlook.com bulk-sender requirements"
    )
    notes: list[str]

    @classmethod
    def of(cls, r: DomainReport) -> DomainCheckOut:
        return cls(
            domain=r.domain,
            provider=r.provider,
            provider_name=r.provider_name,
            verdict=r.verdict,
            checks=[DomainCheckItemOut.of(c) for c in r.checks],
            bulk_applies=r.bulk_applies,
            bulk=[BulkRequirementOut.of(b) for b in r.bulk],
            notes=list(r.notes),
        )
