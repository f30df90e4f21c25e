"""Issue 10, item 12: ``/api/docs`` loads Swagger UI from this origin only (it works
offline and runs no foreign script on the admin origin) under the pages' CSP. Chromium
renders it in tests/e2e/test_api_docs_e2e.py."""

from __future__ import annotations

import re

import httpx

REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
EXPECTED_TYPES = {
    ".js": "javascript",
    ".css": "text/css",
    ".png": "image/png",
}


async def test_the_docs_page_uses_only_same_origin_assets_that_answer(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text  # no inline script: the CSP would block it
    references = REFERENCES.findall(page.text)
    assert len(references) >= 3, page.text
    for url in references:
        assert url.startswith("/") and not url.startswith("//"), url  # same origin
        reply = await client.get(url)
        assert reply.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert EXPECTED_TYPES[suffix] in reply.headers["content-type"], (url, reply.headers)
        assert len(reply.content) > 100, url
    bundle = await client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    css = await client.get("/api/docs/assets/swagger-ui.css")
    assert ".swagger-ui" in css.text


async def test_the_docs_page_carries_the_pages_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/docs")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    # The schema it shows is served from the same origin too.
    schema = await client.get("/api/openapi.json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "visitmail"
