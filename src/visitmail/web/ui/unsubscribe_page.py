"""The unsubscribe page a lead sees (``GET``/``POST /api/v1/unsubscribe/{token}`` from a
browser): styled like the app, in the lead's language, naming the organization. The API
route decides what happened; this module only renders it with the UI's templates."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from visitmail.domain import unsubscribe_texts
from visitmail.web.ui.pages import templates

# Neither a shared cache nor the next site's Referer learns the token.
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def render_unsubscribe_page(
    request: Request,
    state: str,
    language: str | None,
    *,
    organization: str = "",
    address: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """The page in the link's language (English when it has no texts): ``confirm`` (the
    button), ``done`` or ``invalid``. Jinja escapes the organization and the address."""
    words = unsubscribe_texts.texts(language)
    title, message = {
        "confirm": (words.title, words.question),
        "done": (words.done_title, words.done),
        "invalid": (words.invalid_title, words.invalid),
    }[state]
    message = message.format(organization=organization or "visitmail", address=address)
    context = {
        "words": words,
        "state": state,
        "title": title,
        "message": message,
        "organization": organization,
    }
    response = templates.TemplateResponse(
        request, "unsubscribe.html", context, status_code=status_code
    )
    response.headers.update(_NO_STORE)
    return response
