"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"}}``.

Domain errors are translated here, once. Validation errors name the offending field by its
dotted path inside the body (``limits.per_minute``) or the query/path parameter's name.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from visitmail.domain.errors import (
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    VisitmailError,
)
from visitmail.logs import get_logger

log = get_logger(__name__)

STATUS: dict[type[VisitmailError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    NotAuthenticated: 401,
    PermissionDenied: 403,
    RateLimited: 429,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def status_for(exc: VisitmailError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] if len(parts) > 1 else parts
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def _message_of(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if kind in ("model_attributes_type", "dict_type") and tuple(error.get("loc", ())) == ("body",):
        return "the body must be a JSON object"
    return str(error.get("msg", "is invalid"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VisitmailError)
    async def _domain(_request: Request, exc: VisitmailError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field), status_for(exc), headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {"loc": ("body",), "msg": "is invalid"}
        field = _field_of(tuple(first.get("loc", ("body",))))
        if first.get("type") == "json_invalid":
            field = "body"
        body = error_body("invalid", f"{field}: {_message_of(first)}", field)
        body["error"]["details"] = [
            {"field": _field_of(tuple(e.get("loc", ()))), "message": _message_of(e)} for e in errors
        ]
        return JSONResponse(body, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # Only the framework raises 400: a body it could not parse (malformed multipart,
            # undecodable bytes). That is invalid input in the body, answered as such.
            detail = exc.detail if isinstance(exc.detail, str) else "could not be parsed"
            return JSONResponse(error_body("invalid", f"body: {detail}", "body"), 422)
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(
            error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, _exc: IntegrityError) -> JSONResponse:
        # Two requests raced to create the same row (services check first, so only a race
        # gets here). The loser changed nothing; it may simply retry.
        log.info("write conflict", path=request.url.path)
        return JSONResponse(
            error_body("conflict", "a concurrent change collided with this one; retry"), 409
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never echo the exception text: it may hold input or secrets.
        log.error("unhandled error", path=request.url.path, error_type=type(exc).__name__)
        return JSONResponse(error_body("internal", "internal error; it has been logged"), 500)
