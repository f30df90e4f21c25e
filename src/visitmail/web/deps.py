"""Request dependencies: the runtime, a unit of work (a writer, or a read-only one for
routes that only read), and the authenticated principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from visitmail.adapters.db.uow import SqlUnitOfWork
from visitmail.domain.errors import NotAuthenticated
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import identity


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_uow(runtime: RuntimeDep) -> AsyncIterator[SqlUnitOfWork]:
    async with runtime.uow() as uow:
        yield uow


UowDep = Annotated[SqlUnitOfWork, Depends(get_uow)]


async def get_read_uow(runtime: RuntimeDep) -> AsyncIterator[SqlUnitOfWork]:
    """A read-only unit of work (on SQLite a reader connection: it never waits for a
    writer, and any write in it fails)."""
    async with runtime.uow(read_only=True) as uow:
        yield uow


ReadUowDep = Annotated[SqlUnitOfWork, Depends(get_read_uow)]


async def get_principal(request: Request, runtime: RuntimeDep) -> Principal:
    """The bearer token's principal; 401 JSON if missing, malformed, unknown or revoked.
    Cached per token for a few seconds (``identity.PrincipalCache`` states the bound)."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise NotAuthenticated("send 'Authorization: Bearer <api token>'", field="authorization")
    principal = await identity.authenticate_token_cached(
        runtime.principals,
        credentials.strip(),
        reader=lambda: runtime.uow(read_only=True),
        writer=runtime.uow,
    )
    if principal is None:
        raise NotAuthenticated("the API token is unknown or revoked", field="authorization")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def role_at_least(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that passes the principal through if its role is ``role`` or higher."""

    async def _check(principal: PrincipalDep) -> Principal:
        identity.require_role(principal, role)
        return principal

    return _check


AdminDep = Annotated[Principal, Depends(role_at_least(Role.ADMIN))]
