"""The ``visitmail`` command. Thin: parse, call one service, map errors to exit codes.

Exit codes: 0 success, 1 a domain error (message on stderr), 2 bad usage or configuration.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from visitmail.adapters.db import migrate as migrations
from visitmail.adapters.db.engine import is_sqlite
from visitmail.config import ConfigError, Settings, load_settings
from visitmail.domain.errors import VisitmailError
from visitmail.logs import configure_logging
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import identity

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
org_app = typer.Typer(no_args_is_help=True, help="Organizations.")
user_app = typer.Typer(no_args_is_help=True, help="Users.")
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

DEMO_ORG = "Demo organization"
DEMO_ADMIN = "admin@example.com"


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        err.print(f"configuration error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _runtime(settings: Settings, *, create_key: bool = True) -> Runtime:
    try:
        runtime = build_runtime(settings, create_key=create_key)
    except ConfigError as exc:
        err.print(f"configuration error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    for note in runtime.notes:
        err.print(note, markup=False, highlight=False)
    return runtime


def _run(make: Callable[[Runtime], Awaitable[T]], settings: Settings | None = None) -> T:
    """Build a runtime, run ``make`` in an event loop, dispose of the runtime."""
    runtime = _runtime(settings or _settings())

    async def _main() -> T:
        try:
            return await make(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(_main())
    except VisitmailError as exc:
        where = f" ({exc.field})" if exc.field else ""
        err.print(f"error{where}: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(1) from None


async def _ensure_schema(runtime: Runtime) -> bool:
    """Migrate SQLite (embedded) automatically; on PostgreSQL only check. True if current."""
    if is_sqlite(runtime.settings.effective_database_url):
        await migrations.upgrade(runtime.engine)
        return True
    return await migrations.current_revision(runtime.engine) == migrations.head_revision()


@app.command()
def migrate() -> None:
    """Apply database migrations (idempotent)."""

    async def _go(runtime: Runtime) -> str | None:
        await migrations.upgrade(runtime.engine)
        return await migrations.current_revision(runtime.engine)

    revision = _run(_go)
    out.print(f"database is at revision {revision}", markup=False)


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="the organization's name")],
    admin_email: Annotated[str, typer.Option("--admin-email", help="the first admin's email")],
) -> None:
    """Create an organization; print its id, the admin's initial password and an API token."""

    async def _go(runtime: Runtime) -> identity.NewOrganization:
        await _ensure_schema(runtime)
        async with runtime.uow() as uow:
            return await identity.create_organization(
                uow, runtime.hasher, name=name, admin_email=admin_email
            )

    created = _run(_go)
    out.print(f"organization id:  {created.organization.id}", markup=False)
    out.print(f"admin:            {created.admin.email}", markup=False)
    out.print(f"initial password: {created.admin_password}", markup=False)
    out.print(f"api token:        {created.token}", markup=False)
    err.print("The password and token are shown only now; store them safely.", markup=False)


@user_app.command("reset-password")
def user_reset_password(
    email: Annotated[str, typer.Argument(help="the user's email")],
) -> None:
    """Give a user a new generated password (operator recovery) and print it."""

    async def _go(runtime: Runtime) -> str:
        async with runtime.uow() as uow:
            found = await uow.users.find_for_login(email.strip().lower())
            if found is None:
                raise VisitmailError("no user with this email", field="email")
            user = found[0]
            from visitmail.domain.identity import Principal

            operator = Principal(user=user, via="operator")
            password = await identity.set_password(
                uow, runtime.hasher, operator, user.id, password=None
            )
        assert password is not None
        return password

    out.print(f"new password: {_run(_go)}", markup=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="API and UI only; delivery runs elsewhere")
    ] = False,
    dev_inbox: Annotated[
        bool,
        typer.Option("--dev-inbox", help="also run a local SMTP sink and a page showing its mail"),
    ] = False,
) -> None:
    """Serve the web UI and the REST API."""
    import uvicorn

    from visitmail.web.app import create_app

    settings = _settings()
    runtime = _runtime(settings)
    bind_host = host or settings.host
    bind_port = port or settings.port

    async def _prepare() -> identity.NewOrganization | None:
        if not await _ensure_schema(runtime):
            raise VisitmailError("the database is not migrated: run `visitmail migrate` first")
        async with runtime.uow() as uow:
            empty = await uow.organizations.count() == 0
        if empty and dev_inbox:
            async with runtime.uow() as uow:
                return await identity.create_organization(
                    uow, runtime.hasher, name=DEMO_ORG, admin_email=DEMO_ADMIN
                )
        return None

    try:
        demo = asyncio.run(_prepare())
    except VisitmailError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    # The engine was used by another event loop; start uvicorn's loop with a fresh pool.
    asyncio.run(runtime.engine.dispose())

    url = f"http://{bind_host}:{bind_port}/"
    out.print(f"visitmail is starting on {url}", markup=False)
    if demo is not None:
        out.print("First start: created a demo organization.", markup=False)
        out.print(f"  log in at {url}login as {demo.admin.email}", markup=False)
        out.print(f"  password:  {demo.admin_password}", markup=False)
        out.print(f"  API token: {demo.token}", markup=False)
    else:
        out.print(
            f"Log in at {url}login. No account? `visitmail org create NAME --admin-email E`; "
            "lost password? `visitmail user reset-password EMAIL`.",
            markup=False,
        )
    inbox = None
    if dev_inbox:
        from visitmail.adapters.devinbox.sink import DevInbox

        inbox = DevInbox(settings.var_dir / "dev-inbox", port=settings.dev_inbox_port)
        out.print(
            f"dev inbox: SMTP sink on 127.0.0.1:{settings.dev_inbox_port} "
            f"(security none, no auth); received mail at {url}dev-inbox",
            markup=False,
        )
    if no_worker:
        out.print("delivery worker: not in this process (--no-worker)", markup=False)
    uvicorn.run(
        create_app(runtime, own_runtime=True, dev_inbox=inbox),
        host=bind_host,
        port=bind_port,
        log_config=None,
        proxy_headers=True,
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
