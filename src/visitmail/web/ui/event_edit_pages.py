"""The event definition pages: "New event" and "Edit event" (name, status, languages,
dates and the questionnaire).

Both forms send the questions as the JSON list the API takes (``QuestionIn``): the
questions editor (``static/questions_editor.js``) writes it from its form fields, and
without JavaScript the same JSON is typed into the "Advanced (JSON)" text area. Creating and
saving go through :func:`visitmail.services.events.create_event` and
:func:`~visitmail.services.events.update_event` (the API's PUT), so the validation is the
same; only ``event_manager`` and up open these pages (the 403 page otherwise). A save
redirects to the event page with a notice (Post/Redirect/Get); an error re-renders the form
with every value kept, the message beside its field, and, for a question's path
(``questions[2].options[0].key``), also handed to the editor which shows it beside that
question or option.

Changing questions never deletes stored answers (the service's rule); the edit form shows
how many reports answered each question and option, so the editor can warn before one is
removed or renamed.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData

from visitmail.domain.errors import InvalidInput, PermissionDenied, VisitmailError
from visitmail.domain.events import (
    MAX_EVENT_YEAR,
    MIN_EVENT_YEAR,
    AnswerCounts,
    Event,
    EventSpec,
    EventStatus,
    QuestionType,
)
from visitmail.domain.follow_up_context import event_dates
from visitmail.services import events
from visitmail.web.api.event_schemas import QuestionIn
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.ui.outbox_pages import csrf_failed, error_page
from visitmail.web.ui.pages import render, templates, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)

# The event pages write an event's days in English ("May 12 - 16, 2027", an en dash).
templates.env.filters["event_dates"] = lambda e: event_dates(e.starts_on, e.ends_on, "en")

MANAGERS_ONLY = "Only event managers and admins create and change events."
NO_EVENT = "No such event in this organization."
FIELDS = ("name", "languages", "status", "starts_on", "ends_on", "questions")
MAX_FIELD_CHARS = 100_000
QUESTIONS = TypeAdapter(list[QuestionIn])
TYPE_WORDS = {
    QuestionType.TEXT.value: "Text: a free answer",
    QuestionType.NUMBER.value: "Number",
    QuestionType.SINGLE.value: "One choice of a list",
    QuestionType.MULTI.value: "Several choices of a list",
    QuestionType.BOOL.value: "Yes or no",
}
STATUS_WORDS = {
    EventStatus.DRAFT.value: "Draft: being prepared; the capturing app does not show it",
    EventStatus.LIVE.value: "Live: the app shows it and reporters capture visits with it",
}


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def _manager(request: Request, runtime: RuntimeDep) -> UiSession | Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(events.MANAGE_ROLE):
        return error_page(request, session, 403, MANAGERS_ONLY)
    return session


# --- the form -----------------------------------------------------------------------------


def _questions_json(event: Event) -> str:
    doc = [
        {
            "key": q.key,
            "label": dict(q.label),
            "type": q.type.value,
            **(
                {"options": [{"key": o.key, "label": dict(o.label)} for o in q.options]}
                if q.options
                else {}
            ),
        }
        for q in event.questions
    ]
    return json.dumps(doc, indent=2, ensure_ascii=False) if doc else ""


def values_of_event(event: Event) -> dict[str, str]:
    """The form's values for an existing event."""
    return {
        "name": event.name,
        "languages": ", ".join(event.languages),
        "status": event.status.value,
        "starts_on": event.starts_on.isoformat() if event.starts_on else "",
        "ends_on": event.ends_on.isoformat() if event.ends_on else "",
        "questions": _questions_json(event),
    }


def values_of_form(form: FormData) -> dict[str, str]:
    return {key: str(form.get(key) or "")[:MAX_FIELD_CHARS] for key in FIELDS}


def _day(value: str, *, field: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("must be a date such as 2027-05-12", field=field) from None


def _pydantic_path(error: dict[str, Any]) -> str:
    path = "questions"
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def spec_of(values: dict[str, str]) -> EventSpec:
    """The form's event; :class:`InvalidInput` naming the field, or the question's path
    (``questions[0].type``) for a question the API's schema refuses."""
    languages = tuple(
        p.strip() for p in values["languages"].replace(";", ",").split(",") if p.strip()
    )
    if not languages:
        raise InvalidInput("name at least one language, e.g. de, en", field="languages")
    try:
        status = EventStatus(values["status"])
    except ValueError:
        raise InvalidInput("choose draft or live", field="status") from None
    starts_on = _day(values["starts_on"], field="starts_on")
    ends_on = _day(values["ends_on"], field="ends_on")
    raw = values["questions"].strip() or "[]"
    try:
        parsed = QUESTIONS.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            raise InvalidInput(f"not valid JSON: {first['msg']}", field="questions") from None
        raise InvalidInput(str(first["msg"]), field=_pydantic_path(dict(first))) from None
    default = languages[0].lower()
    return EventSpec(
        name=values["name"],
        languages=languages,
        questions=tuple(q.to_domain(default) for q in parsed),
        status=status,
        starts_on=starts_on,
        ends_on=ends_on,
    )


def placed(exc: VisitmailError) -> tuple[dict[str, str], dict[str, str]]:
    """The error beside its form field (``languages[1]`` is the languages field; a question's
    path is the questions field, with the path) and, for a question's path, the same
    message for the editor to show beside that question or option."""
    path = exc.field or "form"
    field = path.split("[", 1)[0].split(".", 1)[0]
    if field not in FIELDS:
        field = "form"
    if field == "questions" and path != "questions":
        return {field: f"{path}: {exc.message}"}, {path: exc.message}
    return {field: exc.message}, {}


def _counts_json(counts: AnswerCounts | None) -> dict[str, Any]:
    if counts is None:
        return {"questions": {}, "options": {}}
    return {"questions": counts.questions, "options": counts.options}


def _form_page(
    request: Request,
    session: UiSession,
    name: str,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    question_errors: dict[str, str] | None = None,
    status: int = 200,
    event: Event | None = None,
    counts: AnswerCounts | None = None,
) -> HTMLResponse:
    answered = sorted((counts.questions if counts else {}).items())
    return render(
        request,
        name,
        session,
        status=status,
        event=event,
        values=values,
        errors=errors or {},
        statuses=STATUS_WORDS,
        types=TYPE_WORDS,
        min_date=f"{MIN_EVENT_YEAR}-01-01",
        max_date=f"{MAX_EVENT_YEAR}-12-31",
        answered=answered,
        editor_data={
            "types": TYPE_WORDS,
            "errors": question_errors or {},
            "counts": _counts_json(counts),
            # the stored types: answers given as one type do not fit another
            "stored_types": {q.key: q.type.value for q in event.questions} if event else {},
        },
    )


# --- new event ----------------------------------------------------------------------------

NEW_VALUES = {
    "name": "",
    "languages": "de, en",
    "status": "draft",
    "starts_on": "",
    "ends_on": "",
    "questions": "",
}


@router.get("/events/new")
async def event_new(request: Request, runtime: RuntimeDep) -> Response:
    guarded = await _manager(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    return _form_page(request, guarded, "event_new.html", values=dict(NEW_VALUES))


@router.post("/events/new")
async def event_create(request: Request, runtime: RuntimeDep) -> Response:
    guarded = await _manager(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    form = await request.form()
    if not tokens_match(guarded.csrf_token, str(form.get("csrf_token") or "")):
        return csrf_failed(request, guarded)
    values = values_of_form(form)
    try:
        spec = spec_of(values)
        async with runtime.uow() as uow:
            created = await events.create_event(uow, guarded.principal, spec)
    except PermissionDenied:
        return error_page(request, guarded, 403, MANAGERS_ONLY)
    except VisitmailError as exc:
        errors, question_errors = placed(exc)
        return _form_page(
            request,
            guarded,
            "event_new.html",
            values=values,
            errors=errors,
            question_errors=question_errors,
            status=status_for(exc),
        )
    return RedirectResponse(f"/events/{created.id}?done=created", status_code=303)


# --- edit an event ------------------------------------------------------------------------


async def _event_and_counts(
    request: Request, runtime: RuntimeDep, session: UiSession, event_id: str
) -> tuple[Event, AnswerCounts] | Response:
    parsed = _uuid(event_id)
    if parsed is None:
        return error_page(request, session, 404, NO_EVENT)
    try:
        async with runtime.uow() as uow:
            event = await events.get_event(uow, session.principal, parsed)
            counts = await events.answer_counts(uow, session.principal, parsed)
    except VisitmailError as exc:
        code = status_for(exc)
        return error_page(request, session, code, NO_EVENT if code == 404 else exc.message)
    return event, counts


@router.get("/events/{event_id}/edit")
async def event_edit(request: Request, runtime: RuntimeDep, event_id: str) -> Response:
    guarded = await _manager(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    found = await _event_and_counts(request, runtime, guarded, event_id)
    if not isinstance(found, tuple):
        return found
    event, counts = found
    return _form_page(
        request,
        guarded,
        "event_edit.html",
        values=values_of_event(event),
        event=event,
        counts=counts,
    )


@router.post("/events/{event_id}/edit")
async def event_update(request: Request, runtime: RuntimeDep, event_id: str) -> Response:
    guarded = await _manager(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    form = await request.form()
    if not tokens_match(guarded.csrf_token, str(form.get("csrf_token") or "")):
        return csrf_failed(request, guarded)
    found = await _event_and_counts(request, runtime, guarded, event_id)
    if not isinstance(found, tuple):
        return found
    event, counts = found
    values = values_of_form(form)
    try:
        spec = spec_of(values)
        async with runtime.uow() as uow:
            await events.update_event(uow, guarded.principal, event.id, spec)
    except PermissionDenied:
        return error_page(request, guarded, 403, MANAGERS_ONLY)
    except VisitmailError as exc:
        if status_for(exc) == 404:
            return error_page(request, guarded, 404, NO_EVENT)
        errors, question_errors = placed(exc)
        return _form_page(
            request,
            guarded,
            "event_edit.html",
            values=values,
            errors=errors,
            question_errors=question_errors,
            status=status_for(exc),
            event=event,
            counts=counts,
        )
    return RedirectResponse(f"/events/{event.id}?done=updated", status_code=303)
