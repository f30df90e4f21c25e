"""The Notification mapping page (admin only): the active document in a form builder
(``static/mapping_builder.js``; :mod:`~visitmail.web.ui.mapping_builder` gives it the
events and fields) and, as its advanced view and without JavaScript, in a JSON editor;
saving a new revision with every problem shown at its path (and its line in the submitted text),
the revisions with a diff against the active one and "activate", and a dry run against a
stored report or a sample lead, under the active mapping or the unsaved text.

Thin: each route parses the form and calls one use case of
:mod:`visitmail.services.mapping`; a dry run is presented with the API's own
:class:`~visitmail.web.api.mapping_schemas.DryRunOut`, so both show the same thing.
Nothing here sends mail.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from visitmail.domain.errors import NotFound, PermissionDenied, VisitmailError
from visitmail.domain.mapping import MappingInvalid, Problem, Trigger
from visitmail.domain.reports import Report
from visitmail.services import events, identity, mapping, reports
from visitmail.services.notification_ports import StoredMapping
from visitmail.services.reports import ReportInput
from visitmail.web.api.mapping_schemas import DryRunOut
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.ui.mapping_builder import LEAD_LABELS, OTHER_PLACEHOLDERS, builder_data
from visitmail.web.ui.outbox_pages import csrf_failed, error_page
from visitmail.web.ui.pages import render, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)

MAX_DOCUMENT = 200_000
RECENT_REPORTS = 50
ADMIN_ONLY = "Only admins read or change the notification mapping."
SAMPLE_LEAD: dict[str, str] = {
    "gender": "female",
    "first_name": "Erika",
    "last_name": "Mustermann",
    "company": "Beispiel GmbH",
    "email": "erika@beispiel.example",
    "zip": "10115",
    "city": "Berlin",
    "country": "DE",
    "language": "de",
}
DocumentForm = Annotated[str, Form(max_length=MAX_DOCUMENT)]
CsrfForm = Annotated[str, Form(max_length=200)]


# --- where a path is in the submitted text -------------------------------------------------


def pretty(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def locate_paths(text: str) -> dict[str, int]:
    """Map every path of the JSON ``text`` (``rules[0].switch.value``; ``""`` for the root)
    to the 1-based line where it starts. Best effort: whatever was found before a syntax
    error is returned."""
    breaks = [i for i, ch in enumerate(text) if ch == "\n"]
    found: dict[str, int] = {}
    decoder = json.JSONDecoder(parse_constant=_reject_constant)

    def line(i: int) -> int:
        return bisect.bisect_left(breaks, i) + 1

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def value(i: int, path: str, depth: int) -> int:
        if depth > 64:
            raise ValueError("nested too deeply")
        i = skip(i)
        found.setdefault(path, line(i))
        opener = text[i : i + 1]
        if opener not in ("{", "["):
            _, end = decoder.raw_decode(text, i)
            return int(end)
        closer = "}" if opener == "{" else "]"
        i = skip(i + 1)
        if text[i : i + 1] == closer:
            return i + 1
        index = 0
        while True:
            i = skip(i)
            if opener == "{":
                key, i = decoder.raw_decode(text, i)
                if not isinstance(key, str):
                    raise ValueError("expected a key")
                at = line(i)
                i = skip(i)
                if text[i : i + 1] != ":":
                    raise ValueError("expected ':'")
                child = f"{path}.{key}" if path else key
                found.setdefault(child, at)
                i = value(i + 1, child, depth + 1)
            else:
                i = value(i, f"{path}[{index}]", depth + 1)
                index += 1
            i = skip(i)
            if text[i : i + 1] == ",":
                i += 1
                continue
            if text[i : i + 1] == closer:
                return i + 1
            raise ValueError(f"expected ',' or '{closer}'")

    with contextlib.suppress(ValueError, IndexError, RecursionError):
        value(0, "", 0)
    return found


def _line_for(path: str, lines: Mapping[str, int]) -> int | None:
    """The line of ``path``, or of its nearest parent that is present (a missing key)."""
    while True:
        if path in lines:
            return lines[path]
        if not path:
            return None
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""


def problem_rows(problems: Sequence[Problem], text: str) -> list[dict[str, Any]]:
    lines = locate_paths(text)
    return [
        {"path": p.path, "message": p.message, "line": _line_for(p.path, lines)} for p in problems
    ]


def parse_text(text: str) -> object:
    """The decoded document, or :class:`MappingInvalid` at the root for a syntax error."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MappingInvalid(
            [Problem("", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")]
        ) from None
    except (ValueError, RecursionError):
        raise MappingInvalid([Problem("", "not valid JSON (or nested too deeply)")]) from None


def _syntax_line(text: str) -> int | None:
    try:
        json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return exc.lineno
    except (ValueError, RecursionError):
        return None
    return None


# --- the page ------------------------------------------------------------------------------


def diff_lines(old: str, new: str, old_name: str, new_name: str) -> list[tuple[str, str]]:
    """A unified diff as ``(kind, line)`` with kind ``add``, ``del``, ``hunk`` or ``same``
    (the template escapes the lines)."""
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    out: list[tuple[str, str]] = []
    for row in difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_name, new_name, lineterm="", n=3
    ):
        kind = "file" if row.startswith(("+++", "---")) else kinds.get(row[:1], "same")
        out.append((kind, row))
    return out


def report_label(report: Report) -> str:
    lead = report.lead
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or "(no name)"
    company = lead.company or "(no company)"
    return f"{name} · {company} · {report.captured_at:%Y-%m-%d %H:%M} · {report.status.value}"


async def _page(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    *,
    status: int = 200,
    text: str | None = None,
    problems: Sequence[Problem] = (),
    notice: str | None = None,
    view: UUID | None = None,
    dry: DryRunOut | None = None,
    dry_form: Mapping[str, str] | None = None,
    dry_error: str | None = None,
) -> HTMLResponse:
    principal = session.principal
    async with runtime.uow() as uow:
        active = await mapping.get_active(uow, principal)
        revisions = await mapping.list_revisions(uow, principal)
        users = await identity.list_users(uow, principal)
        recent = await reports.list_reports(uow, principal, limit=RECENT_REPORTS)
        all_events = await events.list_events(uow, principal)
        viewed: StoredMapping | None = None
        if view is not None:
            try:
                viewed = await mapping.get_revision(uow, principal, view)
            except NotFound:
                viewed = None
    active_text = pretty(active.document) if active is not None else pretty(mapping.EMPTY_DOCUMENT)
    editor = active_text if text is None else text
    rows = problem_rows(problems, editor)
    syntax = _syntax_line(editor) if problems else None
    for row in rows:
        if row["path"] == "" and syntax is not None:
            row["line"] = syntax
    who = {u.id: u.email for u in users}
    diff: list[tuple[str, str]] = []
    viewed_text = ""
    if viewed is not None:
        viewed_text = pretty(viewed.document)
        active_name = f"revision {active.number} (active)" if active else "empty (active)"
        diff = diff_lines(active_text, viewed_text, active_name, f"revision {viewed.number}")
    return render(
        request,
        "mapping.html",
        session,
        status=status,
        active=active,
        editor_text=editor,
        problems=rows,
        notice=notice,
        revisions=[
            {"stored": r, "who": who.get(r.created_by, "—") if r.created_by else "—"}
            for r in revisions
        ],
        viewed=viewed,
        viewed_text=viewed_text,
        diff=diff,
        recent_reports=[(str(r.id), report_label(r)) for r in recent],
        triggers=list(Trigger),
        dry=dry,
        dry_form=dry_form or {"report_id": "", "trigger": "exported", "use_draft": ""},
        dry_error=dry_error,
        builder=builder_data(all_events, problems),
    )


async def _admin(request: Request, runtime: RuntimeDep) -> UiSession | Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(mapping.MAPPING_ROLE):
        return error_page(request, session, 403, ADMIN_ONLY)
    return session


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


@router.get("/mapping")
async def mapping_page(
    request: Request,
    runtime: RuntimeDep,
    view: str = "",
    saved: str = "",
    unchanged: str = "",
    activated: str = "",
) -> Response:
    session = await _admin(request, runtime)
    if not isinstance(session, UiSession):
        return session
    notice = None
    if saved.isdecimal() and len(saved) < 10:
        notice = f"Saved as revision {int(saved)}; it is active now."
    elif unchanged:
        notice = "The document equals the active revision; nothing was stored."
    elif activated.isdecimal() and len(activated) < 10:
        notice = f"Revision {int(activated)} is active now."
    return await _page(request, runtime, session, notice=notice, view=_uuid(view))


@router.get("/mapping/help")
async def mapping_help(request: Request, runtime: RuntimeDep) -> Response:
    """What the rules mean, field by field, with examples (the admin's manual, in the app)."""
    session = await _admin(request, runtime)
    if not isinstance(session, UiSession):
        return session
    return render(
        request,
        "mapping_help.html",
        session,
        lead_labels=LEAD_LABELS,
        placeholders=OTHER_PLACEHOLDERS,
    )


@router.post("/mapping")
async def mapping_save(
    request: Request,
    runtime: RuntimeDep,
    document: DocumentForm = "",
    expected_revision: Annotated[str, Form(max_length=20)] = "",
    csrf_token: CsrfForm = "",
) -> Response:
    session = await _admin(request, runtime)
    if not isinstance(session, UiSession):
        return session
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    expected = int(expected_revision) if expected_revision.isdecimal() else None
    try:
        parsed = parse_text(document)
        async with runtime.uow() as uow:
            saved = await mapping.put_mapping(
                uow, session.principal, parsed, expected_number=expected
            )
    except MappingInvalid as exc:
        return await _page(
            request, runtime, session, status=422, text=document, problems=exc.problems
        )
    except VisitmailError as exc:
        return await _page(
            request,
            runtime,
            session,
            status=status_for(exc),
            text=document,
            problems=[Problem(exc.field or "", exc.message)],
        )
    if not saved.created:
        return RedirectResponse("/mapping?unchanged=1", status_code=303)
    return RedirectResponse(f"/mapping?saved={saved.revision.number}", status_code=303)


@router.post("/mapping/revisions/{revision_id}/activate")
async def mapping_activate(
    request: Request, runtime: RuntimeDep, revision_id: str, csrf_token: CsrfForm = ""
) -> Response:
    session = await _admin(request, runtime)
    if not isinstance(session, UiSession):
        return session
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    wanted = _uuid(revision_id)
    try:
        if wanted is None:
            raise NotFound("no such mapping revision")
        async with runtime.uow() as uow:
            activated = await mapping.activate_revision(uow, session.principal, wanted)
    except MappingInvalid as exc:
        return await _page(request, runtime, session, status=422, problems=exc.problems)
    except NotFound:
        return error_page(request, session, 404, "No such mapping revision in this organization.")
    except PermissionDenied:
        return error_page(request, session, 403, ADMIN_ONLY)
    return RedirectResponse(f"/mapping?activated={activated.number}", status_code=303)


@router.post("/mapping/dry-run")
async def mapping_dry_run(
    request: Request,
    runtime: RuntimeDep,
    document: DocumentForm = "",
    report_id: Annotated[str, Form(max_length=64)] = "",
    trigger: Annotated[str, Form(max_length=20)] = "exported",
    use_draft: Annotated[str, Form(max_length=8)] = "",
    csrf_token: CsrfForm = "",
) -> Response:
    session = await _admin(request, runtime)
    if not isinstance(session, UiSession):
        return session
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    form = {"report_id": report_id, "trigger": trigger, "use_draft": use_draft}
    text = document or None  # keep the unsaved text in the editor either way
    chosen = _uuid(report_id)
    try:
        chosen_trigger = Trigger(trigger)
    except ValueError:
        chosen_trigger = Trigger.EXPORTED
    if report_id and chosen is None:
        return await _page(
            request,
            runtime,
            session,
            status=422,
            text=text,
            dry_form=form,
            dry_error="Choose one of the listed reports.",
        )
    inline = None
    if chosen is None:
        inline = mapping.InlineReport(data=ReportInput(lead=SAMPLE_LEAD), event_id=None)
    try:
        draft = parse_text(document) if use_draft else None
        async with runtime.uow() as uow:
            run = await mapping.dry_run(
                uow,
                session.principal,
                trigger=chosen_trigger,
                report_id=chosen,
                inline=inline,
                document=draft,
            )
    except MappingInvalid as exc:
        return await _page(
            request,
            runtime,
            session,
            status=422,
            text=text,
            problems=exc.problems,
            dry_form=form,
            dry_error="The text in the editor has problems; they are listed above it.",
        )
    except VisitmailError as exc:
        return await _page(
            request,
            runtime,
            session,
            status=status_for(exc),
            text=text,
            dry_form=form,
            dry_error=exc.message,
        )
    return await _page(
        request,
        runtime,
        session,
        text=text,
        dry=DryRunOut.of(run, draft=draft is not None),
        dry_form=form,
    )
