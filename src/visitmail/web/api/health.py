"""Liveness and database reachability."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from visitmail import __version__
from visitmail.web.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and database reachability")
async def healthz(runtime: RuntimeDep) -> JSONResponse:
    """200 with ``database: ok`` when the database answers, 503 otherwise."""
    ok = await runtime.database_ok()
    return JSONResponse(
        {
            "status": "ok" if ok else "unavailable",
            "database": "ok" if ok else "unreachable",
            "version": __version__,
        },
        status_code=200 if ok else 503,
    )
