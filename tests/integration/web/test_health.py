from __future__ import annotations

import httpx

from tests.conftest import TEST_KEYS
from visitmail.config import Settings
from visitmail.runtime import build_runtime
from visitmail.web.app import create_app


async def test_healthz_reports_database_ok(client: httpx.AsyncClient) -> None:
    reply = await client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json()["database"] == "ok"


async def test_healthz_answers_503_when_the_database_is_unreachable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        var_dir=tmp_path,
        master_keys=TEST_KEYS,  # type: ignore[arg-type]
    )
    runtime = build_runtime(settings, fast_hashing=True)
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            reply = await c.get("/healthz")
    finally:
        await runtime.close()
    assert reply.status_code == 503
    assert reply.json() == {
        "status": "unavailable",
        "database": "unreachable",
        "version": reply.json()["version"],
    }


async def test_openapi_schema_documents_the_api(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    assert schema["info"]["title"] == "visitmail"
    for path in ("/healthz", "/api/v1/users", "/api/v1/tokens", "/api/v1/me"):
        assert path in schema["paths"], path
    assert "/login" not in schema["paths"]  # UI pages are not API
