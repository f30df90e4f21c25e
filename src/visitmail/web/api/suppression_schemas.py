"""Request and response bodies of the suppression-list API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from visitmail.domain.follow_up import SuppressionReason
from visitmail.services.follow_up_ports import Refusal, Suppression, SuppressionPage
from visitmail.services.suppressions import MAX_ADDRESS, MAX_NOTE, SuppressionChange
from visitmail.web.api.schemas import Strict


class SuppressionIn(Strict):
    address: str = Field(
        max_length=MAX_ADDRESS,
        description="any address valid for SMTP; kept lower-cased",
        examples=["lead@example.com"],
    )
    note: str | None = Field(
        default=None, max_length=MAX_NOTE, description="why, for whoever reads the list later"
    )


class RefusalOut(BaseModel):
    """The server's reply that put the address on the list (reason `rejected`), or the
    bounce's or complaint's report (reasons `bounced`, `complained`)."""

    code: int | None = Field(
        description="the SMTP reply code, e.g. 550; null if the report named none"
    )
    enhanced_status: str | None = Field(description="RFC 3463, e.g. 5.1.1; null if none")
    text: str = Field(description="the server's reply text")
    message_id: UUID | None = Field(
        description="the follow-up's outbox message (`GET /api/v1/messages/{message_id}`), if known"
    )
    message_id_header: str | None = Field(description="its RFC 5322 Message-ID header, if known")

    @classmethod
    def of(cls, r: Refusal) -> RefusalOut:
        return cls(
            code=r.code,
            enhanced_status=r.enhanced,
            text=r.text,
            message_id=r.outbox_id,
            message_id_header=r.message_id,
        )


class CreatorOut(BaseModel):
    id: UUID
    display_name: str | None = Field(description="null if the user no longer exists")


class SuppressionOut(BaseModel):
    address: str
    reason: SuppressionReason = Field(
        description="`unsubscribed` (the lead's one-click link), `rejected` (a server "
        "refused the address itself permanently; see `reply`) or `manual`"
    )
    created_at: datetime
    created_by: CreatorOut | None = Field(description="who added it by hand; null otherwise")
    note: str | None
    reply: RefusalOut | None = Field(description="for `rejected`: the reply that caused it")

    @classmethod
    def of(cls, s: Suppression) -> SuppressionOut:
        return cls(
            address=s.address,
            reason=s.reason,
            created_at=s.created_at,
            created_by=CreatorOut(id=s.created_by, display_name=s.created_by_name)
            if s.created_by
            else None,
            note=s.note,
            reply=RefusalOut.of(s.refusal) if s.refusal else None,
        )


class SuppressionList(BaseModel):
    items: list[SuppressionOut]
    total: int = Field(description="entries matching `search` in all, across pages")
    limit: int
    offset: int

    @classmethod
    def of(cls, page: SuppressionPage, *, limit: int, offset: int) -> SuppressionList:
        return cls(
            items=[SuppressionOut.of(s) for s in page.items],
            total=page.total,
            limit=limit,
            offset=offset,
        )


class SuppressionChangeOut(BaseModel):
    at: datetime
    action: str = Field(description="`add` or `lift`")
    address: str
    actor_id: UUID | None
    actor_name: str | None = Field(description="null if the user no longer exists")

    @classmethod
    def of(cls, c: SuppressionChange) -> SuppressionChangeOut:
        return cls(
            at=c.at,
            action=c.action,
            address=c.address,
            actor_id=c.actor_id,
            actor_name=c.actor_name,
        )
