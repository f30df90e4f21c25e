"""The ``visitmail`` command. Thin: parse, call one service, map errors to exit codes.

Exit codes: 0 success, 1 a domain error (message on stderr), 2 bad usage or configuration.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from visitmail.adapters.crypto.keyring import KeyRingError, append_new_key, new_key
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.db import migrate as migrations
from visitmail.adapters.db.engine import is_sqlite
from visitmail.config import ConfigError, Settings, load_settings
from visitmail.domain.diagnosis import DiagnosisReport
from visitmail.domain.errors import InvalidInput, NotFound, VisitmailError
from visitmail.domain.identity import clean_name
from visitmail.domain.sender_domain import DomainReport
from visitmail.domain.smtp_presets import PRESETS, preset_host
from visitmail.logs import configure_logging
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import bounce_mailbox, dkim, identity, relay_webhooks, smtp_config, webhooks
from visitmail.services.secret_rotation import RotationResult

if TYPE_CHECKING:
    from fastapi import FastAPI

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
DEMO_ADMIN_NAME = "Demo Admin"


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


def _admin_name(value: str) -> str:
    """A typed name, checked like the service checks it: a refused one is asked again."""
    try:
        return clean_name(value, field="admin_name")
    except InvalidInput as exc:
        raise typer.BadParameter(exc.message) from None


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="the organization's name")],
    admin_email: Annotated[str, typer.Option("--admin-email", help="the first admin's email")],
    admin_name: Annotated[
        str | None,
        typer.Option(
            "--admin-name",
            help="the first admin's name (it signs their follow-ups); asked for when omitted "
            "on a terminal",
        ),
    ] = None,
) -> None:
    """Create an organization; print its id, the admin's initial password and an API token.

    Without ``--admin-name`` the name is asked for when stdin is a terminal; otherwise (a
    script) the admin is created without a name, with a warning on stderr: follow-ups are
    signed with the organization's name until one is set on the users page."""
    if admin_name is None and sys.stdin.isatty():
        admin_name = typer.prompt(
            "The admin's name (first and last; it signs follow-ups)", value_proc=_admin_name
        )
    elif admin_name is None:
        err.print(
            "warning: no --admin-name given: the admin has no name yet, so follow-ups they "
            "send are signed with the organization's name; set it on the Users page.",
            markup=False,
            highlight=False,
        )

    async def _go(runtime: Runtime) -> identity.NewOrganization:
        await _ensure_schema(runtime)
        async with runtime.uow() as uow:
            return await identity.create_organization(
                uow, runtime.hasher, name=name, admin_email=admin_email, admin_name=admin_name
            )

    created = _run(_go)
    out.print(f"organization id:  {created.organization.id}", markup=False)
    out.print(f"admin:            {created.admin.email}", markup=False)
    if admin_name is not None:
        out.print(f"admin name:       {created.admin.display_name}", markup=False)
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


async def _point_at_dev_inbox(runtime: Runtime, demo: identity.NewOrganization, port: int) -> None:
    """The demo organization sends through the local sink, so mail flows out of the box."""
    from visitmail.domain.identity import Principal
    from visitmail.domain.smtp_settings import Security, SmtpSettings

    dev = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        sender_email="visits@example.com",
        sender_name="Demo organization",
    )
    async with runtime.uow() as uow:
        await smtp_config.put_settings(
            uow, SecretBox(runtime.keyring), Principal(user=demo.admin, via="operator"), dev, {}
        )


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
                demo = await identity.create_organization(
                    uow,
                    runtime.hasher,
                    name=DEMO_ORG,
                    admin_email=DEMO_ADMIN,
                    admin_name=DEMO_ADMIN_NAME,
                )
            await _point_at_dev_inbox(runtime, demo, settings.dev_inbox_port)
            return demo
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
            f"Log in at {url}login. No account? "
            "`visitmail org create NAME --admin-email E --admin-name N`; "
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
    from visitmail.processes import build_worker, run_server

    delivery = None
    if no_worker:
        out.print("delivery worker: not in this process (--no-worker)", markup=False)
    else:
        delivery = build_worker(runtime, allow_loopback=dev_inbox)
        out.print(
            f"delivery worker: in this process, {delivery.options.concurrency} conversations",
            markup=False,
        )
    out.print(
        f"stop with SIGTERM or Ctrl-C: work in flight gets {settings.shutdown_grace_seconds:g} s "
        "(VISITMAIL_SHUTDOWN_GRACE_SECONDS)",
        markup=False,
    )

    def make_app(companion: AbstractAsyncContextManager[None] | None) -> FastAPI:
        return create_app(runtime, own_runtime=True, dev_inbox=inbox, companion=companion)

    asyncio.run(
        run_server(make_app, bind_host, bind_port, delivery, grace=settings.shutdown_grace_seconds)
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(help="SMTP conversations at once (default VISITMAIL_WORKER_CONCURRENCY)"),
    ] = None,
) -> None:
    """Deliver the outbox (any number of these, on any machine, with PostgreSQL)."""
    from visitmail.processes import build_worker, run_worker

    settings = _settings()
    runtime = _runtime(settings, create_key=False)

    async def _go() -> None:
        try:
            if not await _ensure_schema(runtime):
                raise VisitmailError("the database is not migrated: run `visitmail migrate`")
            delivery = build_worker(runtime, concurrency=concurrency)
            out.print(
                f"visitmail worker {delivery.name}: {delivery.options.concurrency} "
                "conversations; stop with SIGTERM or Ctrl-C (work in flight gets "
                f"{delivery.options.grace:g} s)",
                markup=False,
            )
            await run_worker(delivery)
        finally:
            await runtime.close()

    try:
        asyncio.run(_go())
    except VisitmailError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(2) from None


# --- SMTP settings and master keys (issue 3) ----------------------------------------------

smtp_app = typer.Typer(no_args_is_help=True, help="Organizations' SMTP settings.")
keys_app = typer.Typer(no_args_is_help=True, help="Master keys that encrypt stored secrets.")
app.add_typer(smtp_app, name="smtp")
app.add_typer(keys_app, name="keys")


def _usage(message: str) -> typer.Exit:
    err.print(message, markup=False, highlight=False)
    return typer.Exit(2)


def _report_json(report: DiagnosisReport) -> str:
    return json.dumps(
        {
            "ok": report.ok,
            "steps": [dataclasses.asdict(step) for step in report.steps],
            "warnings": report.warnings,
            "domain": _domain_json(report.domain) if report.domain else None,
        },
        indent=2,
    )


def _domain_json(domain: DomainReport) -> dict[str, object]:
    """The same shape as the API's ``domain`` block."""
    body = dataclasses.asdict(domain)
    body["verdict"] = domain.verdict.value
    return body


def _domain_table(domain: DomainReport) -> Table:
    title = f"Sender domain {domain.domain}" + (
        f" (through {domain.provider_name})" if domain.provider_name else ""
    )
    table = Table(title=title, show_lines=True)
    for column in ("check", "verdict", "explanation", "record to publish"):
        table.add_column(column)
    for check in domain.checks:
        records = "\n".join(f"{r.name} {r.type} {r.value}" for r in check.records)
        cells = (check.name.upper(), check.verdict.value, check.explanation, records)
        table.add_row(*(Text(c) for c in cells))
    return table


def _report_table(report: DiagnosisReport) -> Table:
    table = Table(title="SMTP connection test", show_lines=False)
    for column in ("step", "status", "ms", "reply", "explanation / fix"):
        table.add_column(column)
    for step in report.steps:
        reply = " ".join(str(p) for p in (step.reply_code, step.reply_text) if p is not None)
        words = " Fix: ".join(t for t in (step.explanation, step.fix) if t)
        # Text cells: server replies are shown literally, never read as Rich markup.
        cells = (step.name.value, step.status.value, str(step.duration_ms), reply, words)
        table.add_row(*(Text(c) for c in cells))
    return table


@smtp_app.command("test")
def smtp_test(
    org: Annotated[str, typer.Option("--org", help="the organization id")],
    send_to: Annotated[
        str | None, typer.Option("--send-to", help="also send a test message here")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    dkim_selector: Annotated[
        list[str] | None,
        typer.Option("--dkim-selector", help="a DKIM selector to check too (repeatable)"),
    ] = None,
) -> None:
    """Run the step-by-step connection test on an organization's saved SMTP settings, and
    check the sender domain's SPF, DKIM and DMARC alongside (informative only).

    Exit 0 only if no step failed, 1 if one did, 2 for an unknown organization, settings
    that were never saved, or a bad --send-to or --dkim-selector. The domain check never
    changes the exit code.
    """
    try:
        organization_id = uuid.UUID(org)
    except ValueError:
        raise _usage("error (org): is not an organization id (a UUID)") from None
    settings = _settings()
    from visitmail.domain.dns_answers import normalize_selectors
    from visitmail.web.smtp_wiring import build_diagnoser, build_domain_check

    try:
        selectors = normalize_selectors(dkim_selector or [], field="dkim-selector")
    except InvalidInput as exc:
        raise _usage(f"error ({exc.field}): {exc.message}") from None
    diagnoser = build_diagnoser(settings)
    domain_check = build_domain_check(settings, selectors)

    async def _go(runtime: Runtime) -> DiagnosisReport | VisitmailError:
        try:
            async with runtime.uow() as uow:
                from visitmail.oauth_wiring import build_token_service

                return await smtp_config.diagnose_organization(
                    uow,
                    SecretBox(runtime.keyring),
                    diagnoser,
                    organization_id,
                    send_to=send_to,
                    domain_check=domain_check,
                    tokens=build_token_service(runtime),
                )
        except (NotFound, InvalidInput) as exc:  # usage errors, not a failed test
            return exc

    result = _run(_go, settings)
    if isinstance(result, VisitmailError):
        where = f" ({result.field})" if result.field else ""
        raise _usage(f"error{where}: {result.message}")
    if as_json:
        print(_report_json(result))
    else:
        out.print(_report_table(result))
        if result.domain is not None:
            out.print(_domain_table(result.domain))
        for warning in result.warnings:
            out.print(f"warning: {warning}", markup=False, highlight=False)
        out.print("OK" if result.ok else "FAILED", markup=False)
    raise typer.Exit(0 if result.ok else 1)


@smtp_app.command("presets")
def smtp_presets() -> None:
    """List the provider presets: host, port, security, how to log in, known limits."""
    for preset in PRESETS:
        also = ", ".join(f"{a.port} {a.security.value}" for a in preset.alternatives)
        lines = [
            f"{preset.id}  ({preset.name})",
            f"  {preset_host(preset)}:{preset.port} {preset.security.value}"
            + (f"  (also {also})" if also else ""),
            f"  username: {preset.username_hint}",
            f"  password: {preset.credential_hint}",
            f"  limits:   {preset.limits_note or 'not documented'}",
            f"  note:     {preset.note}",
            "",
        ]
        for line in lines:
            out.print(line, markup=False, highlight=False)


@keys_app.command("new")
def keys_new() -> None:
    """Print a fresh key entry ('id:base64') to append to VISITMAIL_MASTER_KEYS."""
    key = new_key()
    print(f"{key.key_id}:{base64.urlsafe_b64encode(key.material).decode()}")


@keys_app.command("rotate")
def keys_rotate(
    reencrypt_only: Annotated[
        bool,
        typer.Option(
            "--reencrypt-only",
            help="do not add a key; re-encrypt under the newest one (keys from the environment)",
        ),
    ] = False,
) -> None:
    """Add a new master key to the key file, then re-encrypt every stored secret with it."""
    settings = _settings()
    if not reencrypt_only:
        if settings.master_keys is not None:
            raise _usage(
                "The master keys come from VISITMAIL_MASTER_KEYS, which visitmail cannot "
                "change. Append a new key to that variable (`visitmail keys new` prints one), "
                "restart every visitmail process with it, then run "
                "`visitmail keys rotate --reencrypt-only`."
            )
        path = settings.effective_key_file
        if not path.exists():
            raise _usage(f"no key file at {path}: start visitmail once to create it")
        try:
            ring = append_new_key(path)
        except KeyRingError as exc:
            raise _usage(f"configuration error: {exc}") from None
        out.print(f"added master key {ring.newest.key_id} to {path}", markup=False)

    async def _go(runtime: Runtime) -> RotationResult:
        if not await _ensure_schema(runtime):
            raise VisitmailError("the database is not migrated: run `visitmail migrate` first")
        box = SecretBox(runtime.keyring)
        smtp = await smtp_config.rotate_keys(runtime.uow, box)
        hooks = await webhooks.rotate_keys(runtime.uow, box)
        keys = await dkim.rotate_keys(runtime.uow, box)
        mailboxes = await bounce_mailbox.rotate_keys(runtime.uow, box)
        relays = await relay_webhooks.rotate_keys(runtime.uow, box)
        return smtp + hooks + keys + mailboxes + relays

    result = _run(_go, settings)
    out.print(
        "secret holders (SMTP settings + webhook secrets + DKIM keys + bounce mailboxes + "
        f"relay webhooks): "
        f"{result.organizations}; "
        f"re-encrypted: {result.reencrypted}; already current: {result.already_current}; "
        f"unreadable: {result.unreadable}",
        markup=False,
    )
    if not reencrypt_only:
        err.print(
            "Restart every other visitmail process (serve, worker) now: until they load the "
            "new key they cannot read the re-encrypted secrets.",
            markup=False,
        )
    if result.unreadable:
        orgs = ", ".join(str(o) for o in result.unreadable_organizations)
        err.print(
            f"{result.unreadable} secret(s) could not be decrypted with any key (organizations: "
            f"{orgs}); they were left as they are. Restore the key that sealed them, or have "
            "the admin enter them again.",
            markup=False,
        )
        raise typer.Exit(1)


@app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    }
)
def bench(ctx: typer.Context) -> None:
    """The benchmark suite: every scenario with its peers side by side, tables, JSON and a
    chart (docs/benchmarks.md). Options go to the suite, e.g. ``visitmail bench --scenario
    relay,scale --size smoke --json out.json``; ``visitmail bench --help`` lists them."""
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]  # the source checkout (editable install)
    if not (root / "bench" / "cli.py").exists():
        err.print("the benchmark suite runs from a source checkout (bench/)", markup=False)
        raise typer.Exit(2)
    sys.path.insert(0, str(root))
    configure_logging("WARNING")  # the in-process peers' logs: to stderr, warnings only
    raise typer.Exit(importlib.import_module("bench.cli").main(list(ctx.args)))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
