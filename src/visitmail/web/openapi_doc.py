"""Answers that the ASGI guards give for every operation, added to the OpenAPI schema once.

The guards (:mod:`visitmail.web.limits`, :mod:`visitmail.web.text_guard`) run before any
route, so no route declares what they answer. Every operation that takes a request body
may get:

* 413 ``too_large`` (``field``: ``body``): the body exceeds the operator's limit
  (``VISITMAIL_MAX_BODY_BYTES``);
* 422 ``invalid_text``: the body is not UTF-8, or holds a lone surrogate.

An operation that already documents the status keeps its own description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
_METHODS = ("post", "put", "patch", "delete")


def guard_responses(max_body_bytes: int) -> dict[str, dict[str, Any]]:
    return {
        "413": {
            "description": f"`too_large`: the body exceeds {max_body_bytes} bytes "
            "(the operator's VISITMAIL_MAX_BODY_BYTES)",
            "content": _ERROR,
        },
        "422": {
            "description": "`invalid_text`: the body is not UTF-8 or holds a lone surrogate; "
            "`field` names where",
            "content": _ERROR,
        },
    }


def document_guards(app: FastAPI, max_body_bytes: int) -> None:
    """Wrap ``app.openapi`` so the schema lists the guards' answers (built once, cached)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            extra = guard_responses(max_body_bytes)
            for path_item in schema.get("paths", {}).values():
                for method, operation in path_item.items():
                    if method in _METHODS and "requestBody" in operation:
                        responses = operation.setdefault("responses", {})
                        for status, response in extra.items():
                            responses.setdefault(status, response)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
