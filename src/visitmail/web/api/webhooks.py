"""The organization's webhook signing secrets (admin only; other roles get 403).

Webhooks of the notification mapping name a secret (``secret_ref``); each request is signed
with it (``X-Visitmail-Signature``, see ``docs/webhooks.md``). Values are write-only: the
list shows names and dates; ``PUT`` without a ``secret`` generates one and returns it in
that response only, never again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from visitmail.services import webhooks
from visitmail.services.webhook_ports import WebhookSecretInfo
from visitmail.web.api.schemas import ErrorResponse, Strict
from visitmail.web.deps import AdminDep, ReadUowDep, UowDep
from visitmail.web.smtp_wiring import SecretBoxDep

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "no secret of that name"}
}

router = APIRouter(prefix="/api/v1/webhook-secrets", tags=["webhooks"], responses=ERRORS)

NamePath = Annotated[
    str,
    Path(
        description="1 to 64 letters, digits, '.', '_' or '-'; what a webhook's `secret_ref` names",
        max_length=64,
    ),
]


class WebhookSecretIn(Strict):
    secret: str | None = Field(
        default=None,
        description=f"{webhooks.SECRET_MIN} to {webhooks.SECRET_MAX} characters; omit it to "
        "have a random secret generated (returned once, in this response)",
    )


class WebhookSecretOut(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: WebhookSecretInfo) -> WebhookSecretOut:
        return cls(name=info.name, created_at=info.created_at, updated_at=info.updated_at)


class WebhookSecretPutOut(WebhookSecretOut):
    created: bool = Field(description="true if the name was new")
    secret: str | None = Field(
        default=None,
        description="the generated secret, when none was sent; shown this once, never again",
    )


@router.get("", summary="Names of the webhook secrets (admin; values are never shown)")
async def list_webhook_secrets(principal: AdminDep, uow: ReadUowDep) -> list[WebhookSecretOut]:
    return [WebhookSecretOut.of(i) for i in await webhooks.list_secrets(uow, principal)]


@router.put(
    "/{name}",
    summary="Create or replace a webhook secret (admin)",
    description="With `secret` the value is stored (encrypted); without it a random secret "
    "is generated and returned in `secret`, only in this response.",
)
async def put_webhook_secret(
    name: NamePath,
    principal: AdminDep,
    uow: UowDep,
    box: SecretBoxDep,
    body: WebhookSecretIn | None = None,
) -> WebhookSecretPutOut:
    result = await webhooks.put_secret(uow, box, principal, name, body.secret if body else None)
    info = WebhookSecretOut.of(result.info)
    return WebhookSecretPutOut(**info.model_dump(), created=result.created, secret=result.generated)


@router.delete(
    "/{name}",
    status_code=204,
    summary="Delete a webhook secret (admin); webhooks naming it then fail",
    responses=NOT_FOUND,
)
async def delete_webhook_secret(name: NamePath, principal: AdminDep, uow: UowDep) -> Response:
    await webhooks.delete_secret(uow, principal, name)
    return Response(status_code=204)
