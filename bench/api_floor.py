"""The framework floor of the ``capture`` scenario: the least a FastAPI application on the
same stack (uvicorn, SQLAlchemy async, aiosqlite / asyncpg) must do to store a report sent
with a bearer token. ``POST /api/v1/reports`` authenticates the token with one ``SELECT``
(by the SHA-256 of the token, as visitmail stores them), inserts the JSON body into one
table in its own transaction and answers 201 with the body and the new id. No validation,
no audit, no ORM objects: whatever visitmail spends beyond this is its own.

On SQLite the database is in WAL mode and writes are serialized by one lock in the process
(what a careful small application does instead of sleeping in the busy handler); on
PostgreSQL transactions run concurrently on a pool.

Run: ``python -m bench.api_floor --database-url URL --port P --token T``: creates its
tables, stores the token's hash, and serves on 127.0.0.1:P until SIGTERM. ``GET /healthz``
answers 200 once it is up; ``GET /count`` answers the number of stored reports.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, Uuid, event, func, select
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from visitmail.config import to_async_url

metadata = MetaData()
tokens = Table(
    "floor_tokens",
    metadata,
    Column("secret_hash", String(64), primary_key=True),
    Column("organization_id", Uuid, nullable=False),
)
reports = Table(
    "floor_reports",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def _sqlite_wal(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_app(database_url: str, token: str) -> FastAPI:
    url = to_async_url(database_url)
    sqlite = url.startswith("sqlite")
    engine: AsyncEngine = create_async_engine(url, pool_size=20 if not sqlite else 5)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_wal)
    write_lock = asyncio.Lock() if sqlite else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(
                tokens.insert().values(
                    secret_hash=hashlib.sha256(token.encode()).hexdigest(),
                    organization_id=uuid.uuid4(),
                )
            )
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/count")
    async def count() -> dict[str, int]:
        async with engine.connect() as conn:
            return {
                "count": int(
                    (await conn.execute(select(func.count()).select_from(reports))).scalar_one()
                )
            }

    @app.post("/api/v1/reports", status_code=201)
    async def create_report(
        request: Request, authorization: str = Header(default="")
    ) -> JSONResponse:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise HTTPException(401, "missing bearer token")
        digest = hashlib.sha256(secret.encode()).hexdigest()
        async with engine.connect() as conn:
            organization_id = (
                await conn.execute(
                    select(tokens.c.organization_id).where(tokens.c.secret_hash == digest)
                )
            ).scalar_one_or_none()
        if organization_id is None:
            raise HTTPException(401, "unknown token")
        body: dict[str, Any] = json.loads(await request.body())
        report_id = uuid.uuid4()
        async with write_lock or nullcontext(), engine.begin() as conn:
            await conn.execute(
                reports.insert().values(
                    id=report_id,
                    organization_id=organization_id,
                    body=body,
                    created_at=datetime.now(UTC),
                )
            )
        return JSONResponse({"id": str(report_id), **body}, status_code=201)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    app = create_app(args.database_url, args.token)
    # As `visitmail serve` runs uvicorn: one process, uvicorn's default loop and HTTP parser.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
