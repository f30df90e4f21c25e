"""The OpenAPI schema documents every API endpoint (DESIGN.md: the contract)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute


def api_routes(routes: Sequence[BaseRoute]) -> list[APIRoute]:
    """Every ``APIRoute`` of the app. FastAPI >= 0.165 keeps included routers as wrappers
    (``original_router``); app.py includes them without an extra prefix, so the routes'
    own paths are the served ones."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found.extend(api_routes(inner.routes))
    return found


def documented_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(path, method) of every API route: under /api/v1, plus /healthz and /metrics. A
    path convertor (``{address:path}``) is written as the schema writes it
    (``{address}``)."""
    return [
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method.lower())
        for route in api_routes(app.routes)
        if route.path.startswith("/api/v1/") or route.path in ("/healthz", "/metrics")
        for method in route.methods or ()
    ]


async def test_every_api_route_is_in_the_schema(client: httpx.AsyncClient, app: FastAPI) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    routes = documented_routes(app)
    assert ("/healthz", "get") in routes
    assert ("/metrics", "get") in routes
    assert ("/api/v1/messages", "get") in routes
    for path, method in routes:
        assert path in schema["paths"], path
        operation = schema["paths"][path].get(method)
        assert operation is not None, (method, path)
        assert operation.get("summary"), (method, path)


async def test_outbox_endpoints_are_described(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    for path, method in [
        ("/api/v1/messages", "get"),
        ("/api/v1/messages/{message_id}", "get"),
        ("/api/v1/messages/{message_id}/retry", "post"),
        ("/api/v1/messages/{message_id}/cancel", "post"),
        ("/metrics", "get"),
    ]:
        assert paths[path][method].get("description"), (method, path)
    listing = paths["/api/v1/messages"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert set(params) >= {"status", "kind", "limit", "offset"}
    assert "409" in paths["/api/v1/messages/{message_id}/cancel"]["post"]["responses"]
    assert "text/plain" in str(paths["/metrics"]["get"]["responses"]["200"]["content"])
