"""Relays' bounce and complaint webhooks: the receivers (``/api/v1/relay-webhooks/…``, no
bearer token: the relay authenticates itself, see ``services.relay_webhooks``) and the
admin's endpoints (``/api/v1/relay-webhook-endpoints``, admin only).

A receiver answers ``200 {"applied", "duplicates", "unmatched"}``; 401 for a request that
fails the provider's check (nothing applied), 400 naming the field for a body that is not
the provider's format, 404 for an unknown endpoint, 413 above 5 MB, 503 when the check could
not be made (an SNS certificate out of reach: SNS retries). Never a 500.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.webhooks.sns import HttpSnsClient
from visitmail.domain.errors import NotAuthenticated, NotFound, VisitmailError
from visitmail.domain.relay_events import MalformedPayload, RelayProvider
from visitmail.logs import get_logger
from visitmail.runtime import Runtime
from visitmail.services import relay_webhooks as svc
from visitmail.services.relay_webhook_ports import RelayEndpoint, SnsClient
from visitmail.web.api.schemas import ErrorResponse, Strict
from visitmail.web.deps import AdminDep, ReadUowDep, RuntimeDep, UowDep
from visitmail.web.errors import error_body
from visitmail.web.smtp_wiring import SecretBoxDep

log = get_logger(__name__)

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}

receiver = APIRouter(prefix=svc.URL_PREFIX, tags=["relay webhooks"])
router = APIRouter(
    prefix="/api/v1/relay-webhook-endpoints", tags=["relay webhooks"], responses=ERRORS
)

ProviderPath = Annotated[str, Path(description="sendgrid, mailgun, postmark, brevo or ses")]


def sns_client(request: Request) -> SnsClient:
    """The app's SNS client (tests put one serving a test certificate here)."""
    client: SnsClient | None = getattr(request.app.state, "sns_client", None)
    if client is None:
        client = request.app.state.sns_client = HttpSnsClient()
    return client


def base_url(request: Request, runtime: Runtime) -> str:
    return runtime.settings.public_url or str(request.base_url).rstrip("/")


# --- receivers ------------------------------------------------------------------------------


class ReceivedOut(BaseModel):
    applied: int
    duplicates: int
    unmatched: int


def _error(status: int, code: str, message: str, field: str | None) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status)


async def _bounded_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > svc.MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > svc.MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@receiver.post(
    "/{provider}/{endpoint_token}",
    summary="Receive a relay's bounce / complaint webhook (the relay authenticates itself)",
    responses={
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse, "description": "the token is longer than any token"},
        503: {"model": ErrorResponse},
    },
    response_model=ReceivedOut,
)
async def receive_webhook(
    provider: ProviderPath,
    endpoint_token: Annotated[str, Path(max_length=100)],
    request: Request,
    runtime: RuntimeDep,
) -> Response:
    try:
        relay = svc.parse_provider(provider)
        body = await _bounded_body(request)
        if body is None:
            return _error(413, "too_large", f"the body exceeds {svc.MAX_BODY_BYTES} bytes", "body")
        headers = {k.lower(): v for k, v in request.headers.items()}
        async with runtime.uow() as uow:
            result = await svc.receive(
                uow,
                SecretBox(runtime.keyring),
                sns_client(request),
                relay,
                endpoint_token,
                svc.RelayRequest(headers, body),
            )
    except NotAuthenticated as exc:
        return _error(401, exc.code, exc.message, exc.field)
    except MalformedPayload as exc:
        return _error(400, "bad_request", exc.message, exc.field)
    except NotFound as exc:
        return _error(404, "not_found", exc.message, exc.field)
    except svc.RelayUnavailable as exc:
        return _error(503, exc.code, exc.message, exc.field)
    except VisitmailError as exc:  # a secret no master key opens, a rule broken
        log.warning("relay webhook not processed", provider=provider, code=exc.code)
        return _error(503, exc.code, exc.message, exc.field)
    except Exception as exc:  # the relay retries a 5xx; a 500 page would tell it nothing
        log.exception("relay webhook failed", provider=provider, error=type(exc).__name__)
        return _error(503, "unavailable", "the event could not be processed; retry", None)
    return JSONResponse(
        ReceivedOut(
            applied=result.applied, duplicates=result.duplicates, unmatched=result.unmatched
        ).model_dump()
    )


# --- admin ----------------------------------------------------------------------------------


class EndpointOut(BaseModel):
    provider: str
    label: str
    configured: bool = Field(description="true once the provider's verification data is set")
    url: str | None = Field(
        default=None, description="the receiver's URL with its token: only in the create answer"
    )
    username: str | None = Field(default=None, description="basic-auth user (Postmark, Brevo)")
    password: str | None = Field(
        default=None, description="a generated basic-auth password: only in that answer"
    )
    secret: str | None = Field(
        default=None, description='"set" when a signing key / password is stored; never its value'
    )
    public_key: str | None = Field(default=None, description="SendGrid's verification key")
    topic_arn: str | None = None
    created_at: datetime
    last_event_at: datetime | None
    applied: int
    duplicates: int
    unmatched: int

    @classmethod
    def of(
        cls, e: RelayEndpoint, *, url: str | None = None, password: str | None = None
    ) -> EndpointOut:
        return cls(
            provider=e.provider.value,
            label=e.provider.label,
            configured=svc.is_configured(e),
            url=url,
            username=e.username,
            password=password,
            secret="set" if e.secret_sealed else None,
            public_key=e.public_key,
            topic_arn=e.topic_arn,
            created_at=e.created_at,
            last_event_at=e.last_event_at,
            applied=e.applied,
            duplicates=e.duplicates,
            unmatched=e.unmatched,
        )


class VerificationIn(Strict):
    public_key: str | None = Field(default=None, max_length=2000, description="SendGrid")
    signing_key: str | None = Field(default=None, max_length=256, description="Mailgun")
    username: str | None = Field(default=None, max_length=100, description="Postmark, Brevo")
    password: str | None = Field(
        default=None, max_length=256, description="Postmark, Brevo; omit with generate_password"
    )
    generate_password: bool = Field(default=False, description="Postmark, Brevo: a new one")
    topic_arn: str | None = Field(default=None, max_length=400, description="Amazon SES")


def _provider(value: str) -> RelayProvider:
    return svc.parse_provider(value)


@router.get("", summary="The organization's relay webhook endpoints (admin)")
async def list_endpoints(principal: AdminDep, uow: ReadUowDep) -> list[EndpointOut]:
    return [EndpointOut.of(e) for e in await svc.list_endpoints(uow, principal)]


@router.post(
    "/{provider}",
    status_code=201,
    summary="Create the endpoint for a relay (admin); its URL is shown only in this answer",
    responses={409: {"model": ErrorResponse}},
)
async def create_endpoint(
    provider: ProviderPath,
    principal: AdminDep,
    uow: UowDep,
    box: SecretBoxDep,
    request: Request,
    runtime: RuntimeDep,
) -> EndpointOut:
    change = await svc.create_endpoint(uow, box, principal, _provider(provider))
    url = base_url(request, runtime) + (change.path or "")
    return EndpointOut.of(change.endpoint, url=url, password=change.password)


@router.put(
    "/{provider}/verification",
    summary="Set what the relay's requests are checked with (admin)",
)
async def set_verification(
    provider: ProviderPath,
    body: VerificationIn,
    principal: AdminDep,
    uow: UowDep,
    box: SecretBoxDep,
) -> EndpointOut:
    data = svc.Verification(
        public_key=body.public_key,
        signing_key=body.signing_key,
        username=body.username,
        password=body.password,
        topic_arn=body.topic_arn,
    )
    change = await svc.configure_endpoint(
        uow, box, principal, _provider(provider), data, generate_password=body.generate_password
    )
    return EndpointOut.of(change.endpoint, password=change.password)


@router.delete("/{provider}", status_code=204, summary="Delete a relay's endpoint (admin)")
async def delete_endpoint(provider: ProviderPath, principal: AdminDep, uow: UowDep) -> Response:
    await svc.delete_endpoint(uow, principal, _provider(provider))
    return Response(status_code=204)


@router.post(
    "/{provider}/self-test",
    summary="Sign a sample bounce with the stored secret and receive it (admin)",
    description="Mailgun, Postmark and Brevo; the sample names no message of the outbox, "
    "so it counts as unmatched and changes nothing.",
    responses={409: {"model": ErrorResponse}},
)
async def self_test(
    provider: ProviderPath,
    principal: AdminDep,
    uow: UowDep,
    box: SecretBoxDep,
    request: Request,
) -> ReceivedOut:
    result = await svc.self_test(uow, box, sns_client(request), principal, _provider(provider))
    return ReceivedOut(
        applied=result.applied, duplicates=result.duplicates, unmatched=result.unmatched
    )
