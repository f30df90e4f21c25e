"""``/api/docs``: Swagger UI over the OpenAPI schema, entirely from this origin.

FastAPI's own page loads Swagger UI from a CDN (blank offline, and an unpinned foreign
script on the admin origin) and starts it with an inline script that a strict
Content-Security-Policy forbids. Here the page loads Swagger UI's files from the
``fastapi-offline`` package (pinned in pyproject.toml, served under
:data:`ASSETS_URL`) and starts it from ``/static/swagger-init.js``, so it runs under the
same policy as every other page (``script-src 'self'``, see ``security_headers.py``).
Swagger UI's online validator is off: the schema is never sent to a third party.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/api/docs"
ASSETS_URL = "/api/docs/assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")

router = APIRouter(include_in_schema=False)


def assets() -> StaticFiles:
    """Swagger UI's JavaScript, CSS and icon, as the package ships them."""
    return StaticFiles(packages=[ASSETS_PACKAGE])


def page(openapi_url: str, title: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)} · API</title>
  <link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
  <link rel="icon" href="{ASSETS_URL}/favicon.png">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></div>
  <script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
  <script src="/static/swagger-init.js"></script>
</body>
</html>
"""


@router.get(DOCS_URL)
async def docs() -> HTMLResponse:
    return HTMLResponse(page("/api/openapi.json", "visitmail"))
