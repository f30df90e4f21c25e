"""Back to the page that was asked for, after logging in, and never anywhere else.

A page visited without a session redirects to ``/login``; :class:`ReturnToAfterLogin`
adds ``?next=<the page>`` to that redirect for GET and HEAD requests, so no page has to
pass its own address (every ``to_login()`` gets it). The login form carries ``next`` and,
once the password is right, redirects there.

``next`` is attacker-controlled (anyone can send a link to ``/login?next=…``), so
:func:`safe_next` accepts only a local path: it starts with exactly one ``/``, holds no
backslash (browsers read ``/\\host`` as ``//host``), no control character or space
(browsers drop tabs and newlines, so ``/\\t/host`` would become ``//host``), no scheme and
no host, and is at most :data:`MAX_NEXT_LENGTH` characters. Anything else is ignored and
the login goes to the dashboard: an open redirect would let a phishing link borrow this
site's name.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_NEXT_LENGTH = 2000
LOGIN_PATH = "/login"
#: Where returning makes no sense: the login itself, and logging out.
_NOT_TARGETS = ("/login", "/logout")


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a local path to return to, else ``None``."""
    if not value or len(value) > MAX_NEXT_LENGTH:
        return None
    if not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme or parts.netloc:
        return None
    if parts.path in _NOT_TARGETS:
        return None
    return value


def login_url(next_path: str | None) -> str:
    """``/login``, with ``?next=`` when ``next_path`` is a safe place to return to."""
    target = safe_next(next_path)
    if target is None or target == "/":
        return LOGIN_PATH
    return f"{LOGIN_PATH}?next={quote(target, safe='/')}"


def request_target(scope: Scope) -> str:
    """The path and query of the request as sent (percent-encoding kept)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope.get("path", "/"))
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


class ReturnToAfterLogin:
    """Rewrites a GET's redirect to exactly ``/login`` into ``/login?next=<the page>``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in ("GET", "HEAD")
            or str(scope.get("path", "")).startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        target = login_url(request_target(scope))
        if target == LOGIN_PATH:
            await self.app(scope, receive, send)
            return

        async def send_with_next(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (302, 303, 307):
                headers = [
                    (name, target.encode("latin-1"))
                    if name.lower() == b"location" and value == LOGIN_PATH.encode()
                    else (name, value)
                    for name, value in message.get("headers", [])
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_next)
