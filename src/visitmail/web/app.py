"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from visitmail import __version__
from visitmail.adapters.devinbox.sink import DevInbox
from visitmail.runtime import Runtime
from visitmail.web import api_docs
from visitmail.web.api import bounce_mailbox as bounce_mailbox_api
from visitmail.web.api import dkim as dkim_api
from visitmail.web.api import events as events_api
from visitmail.web.api import follow_ups as follow_ups_api
from visitmail.web.api import health
from visitmail.web.api import identity as identity_api
from visitmail.web.api import mapping as mapping_api
from visitmail.web.api import messages as messages_api
from visitmail.web.api import oauth_connect as oauth_connect_api
from visitmail.web.api import relay_webhooks as relay_webhooks_api
from visitmail.web.api import reports as reports_api
from visitmail.web.api import smtp as smtp_api
from visitmail.web.api import suppressions as suppressions_api
from visitmail.web.api import webhooks as webhooks_api
from visitmail.web.errors import install_error_handlers
from visitmail.web.limits import BodySizeLimit
from visitmail.web.metrics import router as metrics_router
from visitmail.web.openapi_doc import document_guards
from visitmail.web.security_headers import SecurityHeaders
from visitmail.web.text_guard import InvalidTextGuard
from visitmail.web.ui import (
    account_pages,
    bounce_pages,
    event_edit_pages,
    event_pages,
    favicon,
    mapping_pages,
    oauth_pages,
    outbox_pages,
    pages,
    relay_webhook_pages,
    report_pages,
    smtp_pages,
    suppression_pages,
)
from visitmail.web.ui import dev_inbox as dev_inbox_pages
from visitmail.web.ui.return_to import ReturnToAfterLogin
from visitmail.web.ui.session import PasswordChangeRequired, password_change_required

STATIC = Path(__file__).parent / "ui" / "static"


def create_app(
    runtime: Runtime,
    *,
    own_runtime: bool = False,
    dev_inbox: DevInbox | None = None,
    companion: AbstractAsyncContextManager[None] | None = None,
) -> FastAPI:
    """Build the app around ``runtime``; with ``own_runtime`` the app disposes it on shutdown.
    With ``dev_inbox`` the sink runs for the app's lifetime and its pages are served.
    ``companion`` (the in-process delivery worker) is entered after the dev inbox starts
    and exited before it stops and the runtime closes, so it can finish its work."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if dev_inbox is not None:
            dev_inbox.start()
        try:
            if companion is None:
                yield
            else:
                async with companion:
                    yield
        finally:
            if dev_inbox is not None:
                dev_inbox.stop()
            if own_runtime:
                await runtime.close()

    app = FastAPI(
        title="visitmail",
        version=__version__,
        description="Outgoing mail for a lead-capture platform. Authenticate with "
        "`Authorization: Bearer <api token>`; the token decides the organization.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # web/api_docs.py: Swagger UI from this origin, not a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.dev_inbox = dev_inbox.mailbox if dev_inbox else None
    app.state.dev_inbox_port = dev_inbox.port if dev_inbox else None
    install_error_handlers(app)
    app.add_exception_handler(PasswordChangeRequired, password_change_required)
    document_guards(app, runtime.settings.max_body_bytes)
    # Added last = runs first: the size limit bounds what the text guard buffers.
    app.add_middleware(ReturnToAfterLogin)  # pages: to /login?next=<the page>
    app.add_middleware(InvalidTextGuard)
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: also on the guards' own answers
    app.include_router(health.router)
    app.include_router(api_docs.router)
    app.include_router(identity_api.router)
    app.include_router(smtp_api.router)
    app.include_router(dkim_api.router)
    app.include_router(oauth_connect_api.router)
    app.include_router(messages_api.router)
    app.include_router(events_api.router)
    app.include_router(reports_api.router)
    app.include_router(mapping_api.router)
    app.include_router(follow_ups_api.router)
    app.include_router(follow_ups_api.public_router)
    app.include_router(suppressions_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(bounce_mailbox_api.router)
    app.include_router(relay_webhooks_api.receiver)
    app.include_router(relay_webhooks_api.router)
    app.include_router(metrics_router)
    app.include_router(pages.router)
    app.include_router(smtp_pages.router)
    app.include_router(bounce_pages.router)
    app.include_router(relay_webhook_pages.router)
    app.include_router(oauth_pages.router)
    app.include_router(dev_inbox_pages.router)
    app.include_router(outbox_pages.router)
    app.include_router(mapping_pages.router)
    app.include_router(event_edit_pages.router)  # before event_pages: /events/new
    app.include_router(event_pages.router)
    app.include_router(report_pages.router)
    app.include_router(suppression_pages.router)
    app.include_router(account_pages.router)
    app.include_router(favicon.router)
    app.mount(api_docs.ASSETS_URL, api_docs.assets(), name="api-docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
