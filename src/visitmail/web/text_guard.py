"""An ASGI guard that refuses JSON bodies holding text that is not valid Unicode.

JSON may spell a lone UTF-16 surrogate (``"\\ud800"``); Python decodes it into a ``str``
that cannot be encoded as UTF-8, so it would fail later — when the database stores it,
when a page or a list renders it — as a 500, and once stored, every list of that
organization would fail with it. This guard answers such a body at the door, before any
route runs and so before anything is written: 422 ``invalid_text`` naming the dotted path
of the first offending value (``answers.q1``, ``rules[0].actions[1].subject``) or of the
object whose *key* is the offender.

A body that does not decode strictly in its JSON encoding (UTF-8, or the UTF-16/32 that
Python's parser detects) is refused the same way, with ``field`` ``body``: the parsers
would otherwise answer it with a 400 outside the error contract, or — for surrogates
spelled as raw UTF-8 bytes (``ED A0 80``), which ``json.loads`` lets through — let the
same unstorable text in.

Cost: a strict decode, and a byte scan for a surrogate escape (``\\uD800`` to
``\\uDFFF``, either case); only a body that has one is parsed and walked, because
well-formed pairs (emoji) are legal. Bodies that decode but are not well-formed JSON pass
through untouched (the route answers those). Bodies are bounded by
:class:`~visitmail.web.limits.BodySizeLimit`, which runs outside this guard.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visitmail.web.errors import error_body

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_MESSAGE = "must be valid Unicode text (a lone surrogate such as \\ud800 cannot be stored)"
_ENCODING_MESSAGE = "must be JSON text in UTF-8 (the body is not valid UTF-8)"
_KEY_MESSAGE = "has a key that is not valid Unicode text (a lone surrogate cannot be stored)"


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_invalid_text(value: object, path: str = "") -> tuple[str, str] | None:
    """``(field, message)`` for the first string (or object key) in ``value`` that cannot
    be encoded as UTF-8, in document order; None if every string can."""
    if isinstance(value, str):
        return None if _is_text(value) else (path or "body", _MESSAGE)
    if isinstance(value, dict):
        for key, item in value.items():
            if not _is_text(key):
                return (path or "body", _KEY_MESSAGE)
            found = find_invalid_text(item, f"{path}.{key}" if path else key)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = find_invalid_text(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


def _encoding_problem(body: bytes) -> tuple[str, str] | None:
    try:
        body.decode(json.detect_encoding(body))  # strict: lone surrogates fail too
    except UnicodeDecodeError:
        return ("body", _ENCODING_MESSAGE)
    return None


class InvalidTextGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = _encoding_problem(body)
        if problem is None and _SURROGATE_ESCAPE.search(body):
            problem = _problem(body)
        if problem is not None:
            await _refuse(send, *problem)
            return
        replayed: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([replayed], receive), send)


def _problem(body: bytes) -> tuple[str, str] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not well-formed: the route's parser answers it
    return find_invalid_text(document)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _refuse(send: Send, field: str, message: str) -> None:
    # ensure_ascii: the field may hold any text the client sent; escaped, it always encodes.
    payload = json.dumps(error_body("invalid_text", message, field)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
