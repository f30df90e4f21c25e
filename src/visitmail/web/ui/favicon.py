"""The app's icon: ``static/favicon.svg``, linked from ``base.html``, and the same file at
``/favicon.ico``, the address browsers and tools ask for without reading the page (so that
request is not a 404 in every log)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

ICON = Path(__file__).parent / "static" / "favicon.svg"

router = APIRouter(include_in_schema=False)


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """The SVG icon; browsers go by the content type, not the name's extension."""
    return FileResponse(
        ICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )
