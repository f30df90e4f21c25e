"""Every 429 says when to come back: the API's error handler turns :class:`RateLimited`
from any route into 429 JSON with ``Retry-After`` (the login form's 429 is tested in
tests/integration/web/test_ui_login.py)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from visitmail.domain.errors import RateLimited
from visitmail.web.errors import install_error_handlers


async def test_a_rate_limited_api_answer_carries_retry_after() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/limited")
    async def limited() -> None:
        raise RateLimited("too many attempts; try again in 42 seconds", retry_after=42)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        reply = await client.post("/limited")
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "42"
    assert reply.json() == {
        "error": {
            "code": "rate_limited",
            "message": "too many attempts; try again in 42 seconds",
            "field": None,
        }
    }
