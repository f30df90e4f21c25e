"""Follow-up emails to leads: templates per event and language, preview, one follow-up from
the app, bulk from the dashboard, and the RFC 8058 one-click unsubscribe.

Decisions this shell makes (the rules themselves are in ``services/follow_ups.py``):

* **Unsubscribe links** are ``{public base}/api/v1/unsubscribe/{token}``. The token is
  opaque: the organization and the address encrypted under the master key ring
  (``adapters/crypto/unsubscribe_tokens.py``), so neither mail scanners nor access logs
  learn whom a link unsubscribes; the newest key seals, every key in the ring opens, so a
  rotation does not break links already mailed; removing a key from the ring invalidates
  its links. Nothing is stored per organization.
* **The public base URL** is ``VISITMAIL_PUBLIC_URL`` when the operator sets it (validated
  at start by ``config.Settings``), else the request's own base URL. The operator's
  setting is what is right behind a proxy (the request may arrive as
  ``http://127.0.0.1:8000``) and it cannot be steered by a ``Host`` header; the fallback
  keeps the embedded single-machine setup working unconfigured.
* ``POST /api/v1/unsubscribe/{token}`` needs no authentication (the mail client posts
  ``List-Unsubscribe=One-Click``) and answers 200; ``GET`` only shows a page with a
  button, because mail scanners prefetch links and must not unsubscribe anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from visitmail.adapters.crypto.keyring import KeyRing
from visitmail.adapters.crypto.unsubscribe_tokens import UnsubscribeTokens
from visitmail.adapters.db.uow import SqlUnitOfWork
from visitmail.adapters.render.mime import build_message
from visitmail.runtime import Runtime
from visitmail.services import follow_ups
from visitmail.web.api.follow_up_schemas import (
    BulkIn,
    BulkOut,
    FollowUpIn,
    FollowUpOut,
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
    UnsubscribedOut,
)
from visitmail.web.api.schemas import ErrorResponse
from visitmail.web.deps import PrincipalDep, ReadUowDep, RuntimeDep, UowDep
from visitmail.web.errors import error_body
from visitmail.web.smtp_wiring import dkim_signing
from visitmail.web.ui.unsubscribe_page import render_unsubscribe_page

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse, "description": "the role is too low"},
    404: {"model": ErrorResponse, "description": "no such event, report or template"},
    422: {"model": ErrorResponse, "description": "invalid input; `field` names it"},
}
SEND_ERRORS: dict[int | str, dict[str, object]] = {
    409: {
        "model": ErrorResponse,
        "description": "`no_consent` (the lead did not consent), `no_template` (none in the "
        "lead's or the default language) or `not_configured` (no SMTP settings)",
    }
}

router = APIRouter(tags=["follow-ups"], responses=ERRORS)
# The unsubscribe link: no authentication and no roles, so none of ERRORS' 401/403/422
# apply; the page answers a bad link with an HTML page, not the JSON error shape.
public_router = APIRouter(tags=["follow-ups"])


# --- wiring -------------------------------------------------------------------------------


def unsubscribe_tokens(keyring: KeyRing) -> UnsubscribeTokens:
    """Opaque, encrypted unsubscribe tokens under the master key ring."""
    return UnsubscribeTokens(keyring)


def public_base_url(request: Request) -> str:
    """``VISITMAIL_PUBLIC_URL`` if the operator set it, else the request's base URL."""
    runtime: Runtime = request.app.state.runtime
    return runtime.settings.public_url or str(request.base_url).rstrip("/")


@dataclass(frozen=True, slots=True)
class SealedLinks:
    base_url: str
    tokens: UnsubscribeTokens

    def url(self, organization_id: UUID, address: str, language: str) -> str:
        token = self.tokens.seal(organization_id, address)
        # The language rides in the clear: it says nothing about whom the link is for.
        return f"{self.base_url}/api/v1/unsubscribe/{token}?lang={quote(language, safe='')}"


def get_senders(request: Request, runtime: RuntimeDep) -> follow_ups.Senders:
    links = SealedLinks(public_base_url(request), unsubscribe_tokens(runtime.keyring))
    return follow_ups.Senders(
        render=build_message, unsubscribe=links, dkim=dkim_signing(runtime.keyring)
    )


SendersDep = Annotated[follow_ups.Senders, Depends(get_senders)]


# --- templates ----------------------------------------------------------------------------


@router.get(
    "/api/v1/events/{event_id}/templates",
    summary="The event's follow-up templates (event_curator+)",
)
async def list_templates(
    event_id: UUID, principal: PrincipalDep, uow: ReadUowDep
) -> list[TemplateOut]:
    """One per language that has one, ordered by language."""
    found = await follow_ups.list_templates(uow, principal, event_id)
    return [TemplateOut.of(t) for t in found]


@router.get(
    "/api/v1/events/{event_id}/templates/{language}",
    summary="One follow-up template (event_curator+)",
)
async def get_template(
    event_id: UUID, language: str, principal: PrincipalDep, uow: ReadUowDep
) -> TemplateOut:
    """404 with code `no_template` when the event has none in that language."""
    return TemplateOut.of(await follow_ups.get_template(uow, principal, event_id, language))


@router.put(
    "/api/v1/events/{event_id}/templates/{language}",
    summary="Create or replace a follow-up template (event_manager+)",
)
async def put_template(
    event_id: UUID, language: str, body: TemplateIn, principal: PrincipalDep, uow: UowDep
) -> TemplateOut:
    """`language` must be one of the event's. Subject, text and HTML are compiled in the
    sandbox now: a syntax error, an unknown placeholder or a refused construct
    (`{{ ''.__class__ }}`) answers 422 naming `subject`, `text` or `html` and the line; so
    does a script in the HTML part (`<script`, `javascript:` URLs, `on…=` attributes), at
    save and again at render. Besides the mapping's names, templates see `event` (`id`,
    `name`, `languages`) and `questions` (labels by key), and choice answers render as
    their option labels in the template's language (still equal to their keys).
    Attachments must be files of the event's media library (`attachments[i]`)."""
    template = await follow_ups.put_template(uow, principal, event_id, language, body.to_domain())
    return TemplateOut.of(template)


@router.post(
    "/api/v1/events/{event_id}/templates/{language}/preview",
    summary="Render a follow-up template; nothing is sent (event_curator+)",
)
async def preview_template(
    event_id: UUID,
    language: str,
    principal: PrincipalDep,
    uow: ReadUowDep,  # renders only: no writer held (SQLite)
    body: PreviewIn | None = None,
) -> PreviewOut:
    """Against a stored report of the event (`report_id`) or a sample `lead` (an empty
    lead when neither is given); `template` previews an unsaved template."""
    body = body or PreviewIn()
    rendered = await follow_ups.preview_template(
        uow,
        principal,
        event_id,
        language,
        report_id=body.report_id,
        lead=body.lead.values() if body.lead is not None else None,
        spec=body.template.to_domain() if body.template is not None else None,
    )
    return PreviewOut.of(rendered)


# --- sending ------------------------------------------------------------------------------


@router.post(
    "/api/v1/reports/{report_id}/follow-up",
    summary="Queue the follow-up email of one report (any role, for reports it may see)",
    responses=SEND_ERRORS,
)
async def send_follow_up(
    report_id: UUID,
    principal: PrincipalDep,
    uow: UowDep,
    senders: SendersDep,
    body: FollowUpIn | None = None,
) -> FollowUpOut:
    """The template in the lead's language (else the event's default language), rendered
    and queued in the outbox. `status`: `queued` (with `message_id`), `already_sent` (the
    template went to this lead before; `force: true` sends again) or `suppressed` (the
    address is on the suppression list: nothing is queued, the attempt is recorded)."""
    force = body.force if body is not None else False
    result = await follow_ups.send_follow_up(
        uow, principal, report_id, senders=senders, force=force
    )
    return FollowUpOut.of(result)


@router.post(
    "/api/v1/follow-ups/bulk",
    summary="Queue follow-ups for up to 500 reports (event_curator+)",
)
async def bulk_follow_up(
    body: BulkIn, principal: PrincipalDep, uow: UowDep, senders: SendersDep
) -> BulkOut:
    """Each report by the rules of the single follow-up; per report `status` is `queued`,
    `already_sent`, `suppressed`, `no_consent`, `no_template` or `error` (with `message`
    and `field`). Progress: `GET /api/v1/messages?kind=follow_up`."""
    result = await follow_ups.bulk_follow_up(
        uow, principal, body.report_ids, senders=senders, force=body.force
    )
    return BulkOut.of(result)


# --- unsubscribe --------------------------------------------------------------------------

_INVALID_LINK = "this unsubscribe link is not valid"
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # JSON replies


async def _organization_name(uow: SqlUnitOfWork, organization_id: UUID) -> str:
    organization = await uow.organizations.get(organization_id)
    return organization.name if organization is not None else ""


@public_router.get(
    "/api/v1/unsubscribe/{token}",
    summary="The unsubscribe confirmation page (no authentication; changes nothing)",
    response_class=HTMLResponse,
    responses={
        404: {
            "description": "the link is not valid (a page saying so)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
)
async def unsubscribe_page(
    token: str, request: Request, runtime: RuntimeDep, uow: ReadUowDep, lang: str | None = None
) -> HTMLResponse:
    """A page naming the organization with one button that posts to the same URL, in the
    language of ``lang`` (the follow-up's; English without texts for it). Never
    unsubscribes on GET: mail scanners fetch links."""
    found = unsubscribe_tokens(runtime.keyring).open(token)
    if found is None:
        return render_unsubscribe_page(request, "invalid", lang, status_code=404)
    organization_id, address = found
    name = await _organization_name(uow, organization_id)
    return render_unsubscribe_page(request, "confirm", lang, organization=name, address=address)


@public_router.post(
    "/api/v1/unsubscribe/{token}",
    summary="One-click unsubscribe (RFC 8058; no authentication)",
    responses={
        404: {
            "model": ErrorResponse,
            "description": "the link is not valid (a page saying so when the client accepts "
            "text/html)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
)
async def unsubscribe(
    token: str, request: Request, runtime: RuntimeDep, uow: UowDep, lang: str | None = None
) -> Response:
    """Puts the address on the organization's suppression list (idempotent) and answers
    200: JSON, or a confirmation page when a browser posts the form."""
    found = unsubscribe_tokens(runtime.keyring).open(token)
    wants_html = "text/html" in request.headers.get("accept", "")
    if found is None:
        if wants_html:
            return render_unsubscribe_page(request, "invalid", lang, status_code=404)
        return JSONResponse(error_body("not_found", _INVALID_LINK), 404)
    organization_id, address = found
    await follow_ups.unsubscribe(uow, organization_id, address)
    if wants_html:
        name = await _organization_name(uow, organization_id)
        return render_unsubscribe_page(request, "done", lang, organization=name, address=address)
    return JSONResponse(UnsubscribedOut().model_dump(), 200, headers=_NO_STORE)
