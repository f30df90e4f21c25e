"""The Reports pages: the list (everyone; reporters and users see their own) and one
report with its lead, answers, notes and consent, and the Export, Check and Send
follow-up forms. An action that happened redirects (303, Post/Redirect/Get) to the report
with its result sealed in ``?result=`` (:mod:`~visitmail.web.ui.action_result`), so a
reload shows it again and repeats nothing: the notifications the trigger fired (queued,
not sent again, failed with the error; none at all is said in the warning style with a
link to the mapping) or the follow-up's outcome in plain words (a refusal — no consent,
already sent, suppressed, no template — is a result in the warning style, not an error).
An action that could not run (a template that fails to render) re-renders with its status.

Thin: each route calls one use case of :mod:`visitmail.services.reports` or
:mod:`visitmail.services.follow_ups`, with the same trigger hook and senders as the JSON
API (``report_triggers``, ``get_senders``). A report the user may not see is the 404 page.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from visitmail.adapters.db.uow import SqlUnitOfWork
from visitmail.adapters.render.report_pdf import ThreadedReportPdf
from visitmail.domain.errors import VisitmailError
from visitmail.domain.follow_up import FollowUpStatus
from visitmail.domain.mail_view import ascii_filename
from visitmail.domain.reports import LEAD_FIELDS, Report
from visitmail.domain.roles import Role
from visitmail.services import delivery_events, events, follow_ups, report_view, reports
from visitmail.services.notification_ports import PdfUnavailable
from visitmail.services.notifications import format_answers
from visitmail.services.report_ports import FiredNotification, ReportTriggers
from visitmail.web.api.follow_ups import SendersDep
from visitmail.web.api.reports import report_triggers
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.ui.action_result import open_result, seal_result
from visitmail.web.ui.follow_up_words import Words, outcome_words
from visitmail.web.ui.locale_format import answer_rows, country, language, viewer_locale
from visitmail.web.ui.outbox_pages import csrf_failed, error_page
from visitmail.web.ui.pages import render, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)

TriggersDep = Annotated[ReportTriggers[SqlUnitOfWork], Depends(report_triggers)]
CsrfForm = Annotated[str, Form(max_length=200)]
PAGE_SIZE = 50
PDF = ThreadedReportPdf()  # its own small thread pool: rendering stays off the event loop
NO_REPORT = "No such report, or it is not yours to see."
FOLLOW_UP_TEXT = {
    "queued": "The follow-up email is queued for delivery.",
    "already_sent": "This template was already sent to this lead; nothing was queued.",
    "suppressed": "The lead's address is on the suppression list; nothing was queued.",
    "no_consent": "The lead did not consent to a follow-up email; nothing was queued.",
    "no_template": "The event has no follow-up template in the lead's or the default "
    "language; nothing was queued.",
    "not_configured": "The organization has no outgoing mail server yet; an admin must set it up.",
}


def _parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def _event_names(runtime: RuntimeDep, session: UiSession) -> dict[UUID, str]:
    async with runtime.uow() as uow:
        found = await events.list_events(uow, session.principal)
    return {e.id: e.name for e in found}


@router.get("/reports")
async def reports_list(request: Request, runtime: RuntimeDep, page: str = "1") -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    number = max(1, min(int(page), 10_000)) if page.isdecimal() and len(page) < 6 else 1
    async with runtime.uow() as uow:
        found = await reports.list_reports(
            uow, session.principal, limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE
        )
    return render(
        request,
        "reports.html",
        session,
        reports=found[:PAGE_SIZE],
        has_next=len(found) > PAGE_SIZE,
        page=number,
        event_names=await _event_names(runtime, session),
        sees_all=session.principal.role.at_least(reports.READ_ALL_ROLE),
    )


def _notification_rows(fired: list[FiredNotification]) -> list[dict[str, Any]]:
    rows = []
    for n in fired:
        state = "failed" if n.error else "duplicate" if n.duplicate else "queued"
        rows.append(
            {
                "rule": n.rule,
                "kind": n.kind,
                "state": state,
                "recipients": list(n.recipients),
                "outbox_id": str(n.outbox_id) if n.outbox_id else None,
                "error": n.error,
            }
        )
    return rows


NOTIFY_WORDS = {
    "queued": Words("ok", "Queued"),
    "duplicate": Words("warn", "Not sent again: already notified for this revision"),
    "failed": Words("error", "Failed"),
}


def _notification_view(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows with their words, and the heading's tone and text."""
    shown = [
        {**r, "words": NOTIFY_WORDS.get(str(r.get("state")), NOTIFY_WORDS["failed"])} for r in rows
    ]
    states = {r["state"] for r in shown}
    if not shown:
        tone = "warn"
    elif "failed" in states:
        tone = "error"
    elif states == {"duplicate"}:
        tone = "warn"
    else:
        tone = "ok"
    return {"rows": shown, "tone": tone}


def _follow_up_view(status: str, outbox_id: str | None, message: str | None) -> dict[str, Any]:
    words = outcome_words(status, message=message)
    if status == FollowUpStatus.ALREADY_SENT.value:
        words = Words(words.tone, "Skipped: already sent to this lead before")
    return {
        "status": status,
        "words": words,
        "text": FOLLOW_UP_TEXT.get(status, message or ""),
        "outbox_id": outbox_id,
    }


def _kind(report_id: UUID) -> str:
    return f"report:{report_id}"


def _redirect(
    runtime: RuntimeDep, session: UiSession, report_id: UUID, payload: dict[str, Any]
) -> RedirectResponse:
    token = seal_result(runtime.keyring, session, _kind(report_id), payload)
    return RedirectResponse(
        f"/reports/{report_id}?{urlencode({'result': token})}#action-result", status_code=303
    )


def _opened(runtime: RuntimeDep, session: UiSession, report_id: UUID, token: str) -> dict[str, Any]:
    """The page context of the result the redirect carried (or that it expired)."""
    payload = open_result(runtime.keyring, session, _kind(report_id), token)
    if payload is None:
        return {"expired": True}
    action = str(payload.get("a", ""))
    if action in ("export", "check") and isinstance(payload.get("n"), list):
        return {"action": action, "notifications": _notification_view(payload["n"])}
    follow_up = payload.get("f")
    if action == "follow-up" and isinstance(follow_up, dict):
        return {
            "action": action,
            "follow_up": _follow_up_view(
                str(follow_up.get("status", "")),
                follow_up.get("outbox_id") or None,
                follow_up.get("message") or None,
            ),
        }
    return {"expired": True}


async def _detail(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    report_id: str,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    parsed = _parse_uuid(report_id)
    if parsed is None:
        return error_page(request, session, 404, NO_REPORT)
    try:
        async with runtime.uow(read_only=True) as uow:
            report, event = await report_view.report_with_event(uow, session.principal, parsed)
            came_back = await delivery_events.report_events(
                uow, session.principal.organization_id, report.id
            )
    except VisitmailError as exc:
        code = status_for(exc)
        return error_page(request, session, code, NO_REPORT if code == 404 else exc.message)
    locale = viewer_locale(request.headers.get("accept-language"))
    lead = report.lead.as_context()
    if lead.get("country"):
        lead["country"] = country(lead["country"], locale)
    if lead.get("language"):
        lead["language"] = language(lead["language"], locale)
    context.setdefault("delivery_problems", [e for e in came_back if e.kind != "deferred"])
    context.setdefault("notifications", None)
    context.setdefault("action", None)
    context.setdefault("follow_up", None)
    context.setdefault("problem", None)
    context.setdefault("expired", False)
    return render(
        request,
        "report.html",
        session,
        status=status,
        report=report,
        event=event,
        lead_rows=[(f, lead.get(f, "")) for f in LEAD_FIELDS if lead.get(f)],
        answer_rows=answer_rows(event, dict(report.answers), locale),
        can_check=session.principal.role.at_least(reports.CHECK_ROLE),
        mapping_role=Role.ADMIN,
        **context,
    )


@router.get("/reports/{report_id}.pdf")
async def report_pdf(request: Request, runtime: RuntimeDep, report_id: str) -> Response:
    """The report as the PDF that notifications attach, in the viewer's language (German or
    English labels), shown inline. Only a report the viewer may see; else the 404 page."""
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    parsed = _parse_uuid(report_id)
    if parsed is None:
        return error_page(request, session, 404, NO_REPORT)
    try:
        async with runtime.uow(read_only=True) as uow:
            report, event = await report_view.report_with_event(uow, session.principal, parsed)
    except VisitmailError as exc:
        code = status_for(exc)
        return error_page(request, session, code, NO_REPORT if code == 404 else exc.message)
    tag = viewer_locale(request.headers.get("accept-language")).language
    try:
        data = await PDF.render(
            report,
            event.name if event else "",
            format_answers(event, dict(report.answers), tag),
            tag,
        )
    except PdfUnavailable as exc:
        return error_page(request, session, 503, f"The PDF cannot be made: {exc}")
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{_pdf_name(report)}"',
            "Cache-Control": "private, no-store",
        },
    )


def _pdf_name(report: Report) -> str:
    """``report-<company or last name>-<date>.pdf`` in ASCII, ``ß`` as ``ss``."""
    lead = report.lead
    who = lead.company or lead.last_name or "lead"
    return ascii_filename(f"report-{who}-{report.captured_at.date().isoformat()}.pdf")


@router.get("/reports/{report_id}")
async def report_page(
    request: Request, runtime: RuntimeDep, report_id: str, result: str = ""
) -> Response:
    """The report; ``result`` carries an action's result after its redirect."""
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    parsed = _parse_uuid(report_id)
    context = _opened(runtime, session, parsed, result) if result and parsed else {}
    return await _detail(request, runtime, session, report_id, **context)


async def _trigger(
    request: Request,
    runtime: RuntimeDep,
    report_id: str,
    csrf_token: str,
    triggers: ReportTriggers[SqlUnitOfWork],
    *,
    check: bool,
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    parsed = _parse_uuid(report_id)
    if parsed is None:
        return error_page(request, session, 404, NO_REPORT)
    action = "check" if check else "export"
    try:
        async with runtime.uow() as uow:
            if check:
                done = await reports.check_report(uow, session.principal, parsed, triggers=triggers)
            else:
                done = await reports.export_report(
                    uow, session.principal, parsed, triggers=triggers
                )
    except VisitmailError as exc:
        code = status_for(exc)
        if code == 404:
            return error_page(request, session, 404, NO_REPORT)
        if code == 403:
            return error_page(
                request, session, 403, "Only event curators, managers and admins check reports."
            )
        return await _detail(
            request, runtime, session, report_id, status=code, action=action, problem=exc.message
        )
    return _redirect(
        runtime, session, parsed, {"a": action, "n": _notification_rows(done.notifications)}
    )


@router.post("/reports/{report_id}/export")
async def report_export(
    request: Request,
    runtime: RuntimeDep,
    report_id: str,
    triggers: Annotated[ReportTriggers[SqlUnitOfWork], Depends(report_triggers)],
    csrf_token: CsrfForm = "",
) -> Response:
    return await _trigger(request, runtime, report_id, csrf_token, triggers, check=False)


@router.post("/reports/{report_id}/check")
async def report_check(
    request: Request,
    runtime: RuntimeDep,
    report_id: str,
    triggers: Annotated[ReportTriggers[SqlUnitOfWork], Depends(report_triggers)],
    csrf_token: CsrfForm = "",
) -> Response:
    return await _trigger(request, runtime, report_id, csrf_token, triggers, check=True)


@router.post("/reports/{report_id}/follow-up")
async def report_follow_up(
    request: Request,
    runtime: RuntimeDep,
    report_id: str,
    senders: SendersDep,
    csrf_token: CsrfForm = "",
    force: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    parsed = _parse_uuid(report_id)
    if parsed is None:
        return error_page(request, session, 404, NO_REPORT)
    try:
        async with runtime.uow() as uow:
            result = await follow_ups.send_follow_up(
                uow, session.principal, parsed, senders=senders, force=force == "on"
            )
    except VisitmailError as exc:
        code = status_for(exc)
        if code == 404:
            return error_page(request, session, 404, NO_REPORT)
        if exc.code in FOLLOW_UP_TEXT:  # a refusal by a rule: the request's result
            return _redirect(
                runtime, session, parsed, {"a": "follow-up", "f": {"status": exc.code}}
            )
        text = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return await _detail(
            request,
            runtime,
            session,
            report_id,
            status=code,
            action="follow-up",
            follow_up=_follow_up_view("error", None, text),
        )
    return _redirect(
        runtime,
        session,
        parsed,
        {
            "a": "follow-up",
            "f": {
                "status": result.status.value,
                "outbox_id": str(result.outbox_id) if result.outbox_id else None,
            },
        },
    )
