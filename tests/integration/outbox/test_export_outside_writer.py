"""Exporting a report renders its notifications (templates, PDF, MIME) before the write
transaction begins: on SQLite the single writer connection is free while the PDF renders,
so other writes never queue behind rendering. The mail that arrives is the same."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.outbox.test_notifications import deliver, export, only, pdf_text, server
from tests.integration.web.test_mapping_api import (
    capture,
    live_event,
    put_mapping,
    regional_mapping,
)
from tests.support.orgs import OrgFixture
from tests.support.smtp_servers import SmtpServer
from visitmail.adapters.render.report_pdf import ThreadedReportPdf
from visitmail.domain.reports import Report
from visitmail.runtime import Runtime
from visitmail.services.notifications import MappingTriggers
from visitmail.web.api.mapping import MimeRenderer
from visitmail.web.api.reports import report_triggers

__all__ = ["server"]  # the SMTP server fixture, shared


class WatchedPdf:
    """Renders for real, noting how many writer connections were in use meanwhile."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.writers_in_use: list[int] = []
        self._pdf = ThreadedReportPdf()

    async def render(
        self, report: Report, event_name: str, questions: Sequence[tuple[str, str]], language: str
    ) -> bytes:
        self.writers_in_use.append(self.runtime.engine.pool.checkedout())  # type: ignore[attr-defined]
        return await self._pdf.render(report, event_name, questions, language)


@pytest.fixture
async def watched(app: FastAPI, runtime: Runtime) -> AsyncIterator[WatchedPdf]:
    pdf = WatchedPdf(runtime)
    hook = MappingTriggers(MimeRenderer(), pdf)
    app.dependency_overrides[report_triggers] = lambda: hook
    try:
        yield pdf
    finally:
        app.dependency_overrides.pop(report_triggers, None)


async def test_the_pdf_renders_while_no_write_transaction_is_open(
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    server: SmtpServer,
    watched: WatchedPdf,
    backend: str,
) -> None:
    await put_mapping(client, org, regional_mapping())
    event = await live_event(client, org)
    report = await capture(client, org, event["id"])

    done = await export(client, org, report["id"])
    (fired,) = done["notifications"]
    assert fired["kind"] == "email" and fired["duplicate"] is False

    assert len(watched.writers_in_use) == 1
    if backend == "sqlite":  # PostgreSQL has one pool for readers and writers
        assert watched.writers_in_use == [0]

    await deliver(runtime, org)
    mail = only(server.recorder.messages).parsed()
    assert mail["X-Visitmail-Report"] == report["id"]
    (attachment,) = list(mail.iter_attachments())
    words = "".join(pdf_text(attachment.get_content()).split())
    assert "MüllerGmbH" in words
