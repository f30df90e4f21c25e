"""Security headers on every response (an ASGI wrapper around ``send``).

Every response: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``
(no URL of the admin UI, with ids in it, leaks to another site). HTML pages additionally
get a Content-Security-Policy that allows only the app's own scripts, styles and images
(``data:`` images too), no plugins, no ``<base>`` and forms posting only to the app, and
``frame-ancestors 'none'`` (with ``X-Frame-Options: DENY`` for older browsers), so no
other site can frame an admin page (click-jacking). A response that sets its own policy
keeps it: the dev inbox serves a mail's HTML for its ``sandbox`` iframe with a stricter one
(no script, no remote image) and ``X-Frame-Options: SAMEORIGIN`` (``web/ui/dev_inbox.py``).

``/api/docs`` is no exception: Swagger UI is served from this origin and started from a
script file (``web/api_docs.py``), so the same policy holds there. A response that sets
its own ``Content-Security-Policy`` keeps it (:func:`policy_with_form_targets`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def policy_with_form_targets(origins: list[str]) -> str:
    """The policy with ``form-action`` widened to ``origins``: a page whose form redirects
    to another site (the mail server page's Connect, a 303 to the OAuth provider's sign-in)
    sets this itself; browsers check ``form-action`` on the redirect too."""
    allowed = " ".join(dict.fromkeys(o for o in origins if o))
    return CONTENT_SECURITY_POLICY.replace("form-action 'self'", f"form-action 'self' {allowed}")


_EVERY_RESPONSE = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
_HTML_PAGES = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = list(_EVERY_RESPONSE)
                if _is_html(headers):
                    extra += _HTML_PAGES
                headers += [(n, v) for n, v in extra if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(n.lower() == b"content-type" and b"text/html" in v.lower() for n, v in headers)
