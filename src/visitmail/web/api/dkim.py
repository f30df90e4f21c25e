"""DKIM signing of the organization's mail: status and the DNS record to publish, new keys,
on/off and which key signs. Admin only (other roles get 403).

``POST /api/v1/smtp-settings/dkim`` generates a key (``rsa`` 2048 or ``ed25519``) and
answers with the record to publish; the private key is write-only: no response carries
it. The first key becomes the active one; a later key is only added until a ``PUT``
selects it (``active_key_id``), so mail keeps being signed while the new record
propagates. Signing starts off: ``PUT {"enabled": true}`` once the record is in DNS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field

from visitmail.adapters.dkim.keys import DkimpyKeys
from visitmail.domain.dkim import (
    MAX_DOMAIN,
    MAX_SELECTOR,
    DkimAlgorithm,
    DkimKey,
    txt_strings,
    zone_line,
)
from visitmail.services import dkim
from visitmail.services.dkim_ports import DkimKeyMaterial
from visitmail.web.api.schemas import ErrorResponse, Strict
from visitmail.web.deps import AdminDep, ReadUowDep, UowDep
from visitmail.web.smtp_wiring import SecretBoxDep

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    422: {"model": ErrorResponse, "description": "invalid input; `field` names it"},
}

router = APIRouter(prefix="/api/v1/smtp-settings/dkim", tags=["dkim"], responses=ERRORS)


def get_key_material() -> DkimKeyMaterial:
    return DkimpyKeys()


KeyMaterialDep = Annotated[DkimKeyMaterial, Depends(get_key_material)]


class DnsRecordOut(BaseModel):
    """The TXT record to publish for a key."""

    name: str = Field(description="`<selector>._domainkey.<domain>`")
    type: str = "TXT"
    value: str = Field(description="`v=DKIM1; k=rsa|ed25519; p=<base64>`")
    strings: list[str] = Field(description="`value` cut into TXT strings of at most 255 octets")
    zone_line: str = Field(description="the record as a zone-file line")

    @classmethod
    def of(cls, key: DkimKey) -> DnsRecordOut:
        strings = txt_strings(key.record_value)
        return cls(
            name=key.record_name,
            value=key.record_value,
            strings=strings,
            zone_line=zone_line(key.record_name, strings),
        )


class DkimKeyOut(BaseModel):
    id: UUID
    selector: str
    domain: str
    algorithm: DkimAlgorithm
    created_at: datetime
    active: bool
    dns_record: DnsRecordOut

    @classmethod
    def of(cls, key: DkimKey, active_id: UUID | None) -> DkimKeyOut:
        return cls(
            id=key.id,
            selector=key.selector,
            domain=key.domain,
            algorithm=key.algorithm,
            created_at=key.created_at,
            active=key.id == active_id,
            dns_record=DnsRecordOut.of(key),
        )


class DkimStatusOut(BaseModel):
    enabled: bool = Field(description="the admin's switch")
    signing: bool = Field(description="whether outgoing mail is signed now")
    problems: list[str] = Field(description="why mail is not signed now (empty when it is)")
    sender_domain: str | None
    selector: str | None = Field(description="the active key's selector")
    domain: str | None = Field(description="the active key's signing domain (`d=`)")
    algorithm: DkimAlgorithm | None
    active_key_id: UUID | None
    dns_record: DnsRecordOut | None = Field(description="the active key's record to publish")
    keys: list[DkimKeyOut] = Field(description="every key, newest first")

    @classmethod
    def of(cls, view: dkim.DkimStatus) -> DkimStatusOut:
        active = view.active
        return cls(
            enabled=view.enabled,
            signing=view.signing,
            problems=view.problems,
            sender_domain=view.sender_domain,
            selector=active.selector if active else None,
            domain=active.domain if active else None,
            algorithm=active.algorithm if active else None,
            active_key_id=active.id if active else None,
            dns_record=DnsRecordOut.of(active) if active else None,
            keys=[DkimKeyOut.of(k, active.id if active else None) for k in view.keys],
        )


class DkimKeyIn(Strict):
    algorithm: DkimAlgorithm = Field(
        default=DkimAlgorithm.RSA, description="`rsa` (2048 bit; every receiver) or `ed25519`"
    )
    selector: str | None = Field(
        default=None,
        max_length=MAX_SELECTOR,
        description="one DNS label; default `vm<yyyymm>`",
    )
    domain: str | None = Field(
        default=None,
        max_length=MAX_DOMAIN,
        description="the signing domain (`d=`): the sender's domain (default) or a parent",
    )


class DkimStateIn(Strict):
    enabled: bool | None = Field(default=None, description="sign outgoing mail")
    active_key_id: UUID | None = Field(default=None, description="the key that signs")


@router.get("", summary="DKIM status, the active key and the DNS records (admin)")
async def get_dkim(principal: AdminDep, uow: ReadUowDep) -> DkimStatusOut:
    return DkimStatusOut.of(await dkim.get_status(uow, principal))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Generate a DKIM key (admin); answers with the record to publish",
    responses={
        404: {"model": ErrorResponse, "description": "`not_configured`: no SMTP settings"},
        409: {
            "model": ErrorResponse,
            "description": "`selector_taken` or `too_many_keys`; `field` names it",
        },
    },
)
async def generate_key(
    principal: AdminDep,
    uow: UowDep,
    box: SecretBoxDep,
    material: KeyMaterialDep,
    body: DkimKeyIn | None = None,
) -> DkimKeyOut:
    """The first key becomes the active one; later keys wait until a `PUT` selects them.
    The private key is stored encrypted and never returned."""
    given = body or DkimKeyIn()
    key = await dkim.generate_key(
        uow,
        box,
        material,
        principal,
        algorithm=given.algorithm,
        selector=given.selector,
        domain=given.domain,
    )
    view = await dkim.get_status(uow, principal)
    return DkimKeyOut.of(key, view.active.id if view.active else None)


@router.put("", summary="Turn signing on or off, select the key that signs (admin)")
async def put_dkim(body: DkimStateIn, principal: AdminDep, uow: UowDep) -> DkimStatusOut:
    view = await dkim.update_state(
        uow, principal, enabled=body.enabled, active_key_id=body.active_key_id
    )
    return DkimStatusOut.of(view)


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a key that no longer signs (admin)",
    responses={
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse, "description": "`key_active`"},
    },
)
async def delete_key(key_id: UUID, principal: AdminDep, uow: UowDep) -> None:
    await dkim.delete_key(uow, principal, key_id)
