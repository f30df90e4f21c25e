"""Pieces of the API scenarios' harness that are cheap to check on their own: the
timestamping sink records each message with its subject and whether it carried a PDF (and
keeps the first PDF), the steady driver fires every trigger once, and a run that lost or
duplicated a notification is refused rather than measured. No timing is asserted."""

from __future__ import annotations

import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtplib import SMTP

from bench.api_harness import lead, percentile, report_body, server_errors
from bench.api_sink import start_timed_sink
from bench.scenarios.latency import RunFailed, Variant, latencies, steady

pytestmark = pytest.mark.xdist_group("bench")

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def message(subject: str, pdf: bool) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "a@bench.example"
    m["To"] = "b@bench.example"
    m["Subject"] = subject
    m.set_content("hello\n")
    if pdf:
        m.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")
    return m


async def test_the_timed_sink_records_each_arrival_with_subject_and_pdf() -> None:
    sink = await start_timed_sink()
    try:
        before = time.time()
        async with SMTP(hostname=sink.host, port=sink.port, start_tls=False) as smtp:
            await smtp.send_message(message("visitmail-latency one", pdf=False))
            await smtp.send_message(message("visitmail-latency two", pdf=True))
        arrivals = sink.arrivals()
        assert [(a.subject, a.has_pdf) for a in arrivals] == [
            ("visitmail-latency one", False),
            ("visitmail-latency two", True),
        ]
        assert all(before <= a.at <= time.time() for a in arrivals)
        assert sink.count() == 2
        assert sink.pdf_file.read_bytes() == PDF
    finally:
        await sink.close()


async def test_steady_fires_every_trigger_once_in_order() -> None:
    fired: list[int] = []

    async def fire(i: int) -> None:
        fired.append(i)

    sent = await steady(5, 1000.0, fire)
    assert fired == [0, 1, 2, 3, 4]
    assert list(sent) == [0, 1, 2, 3, 4]
    assert sorted(sent.values()) == list(sent.values())


async def test_steady_reports_how_many_triggers_failed() -> None:
    async def fire(i: int) -> None:
        if i % 2:
            raise RunFailed(f"export answered 500 ({i})")

    with pytest.raises(
        RunFailed, match=r"2 of 4 triggers failed; the first: export answered 500 \(1\)"
    ):
        await steady(4, 1000.0, fire)


def test_a_lost_or_duplicated_notification_is_refused() -> None:
    variant = Variant("no_pdf", "no PDF", False, 10, 2)
    sent = {"a": 100.0, "b": 100.1}
    found = latencies(sent, {"a": [100.05], "b": [100.2]}, variant, "peer")
    assert [round(x) for x in found.ms] == [50, 100]
    with pytest.raises(RunFailed, match="1 notifications lost"):
        latencies(sent, {"a": [100.05]}, variant, "peer")
    with pytest.raises(RunFailed, match="1 duplicated"):
        latencies(sent, {"a": [100.05], "b": [100.2, 100.3]}, variant, "peer")


def test_leads_are_distinct_and_consenting() -> None:
    addresses = {lead(i, run="r")["email"] for i in range(100)}
    assert len(addresses) == 100
    assert report_body("e", 3)["consent"]["follow_up_email"] is True


def test_percentiles_interpolate() -> None:
    assert percentile([1.0], 99) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_server_errors_are_distinct_lines_without_ids(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    log.write_text(
        "visitmail is starting on http://127.0.0.1:1/\n"
        "2026-12-02T00:26:47.476972Z [error    ] unhandled error   [visitmail.web.errors] "
        "error_type=OperationalError path=/api/v1/reports/28327ac1-25f3-422f-86dc-ed94dbab159b/export\n"
        "Traceback (most recent call last):\n"
        "sqlite3.OperationalError: database is locked\n"
        "2026-12-02T00:26:48.000000Z [error    ] unhandled error   [visitmail.web.errors] "
        "error_type=OperationalError path=/api/v1/reports/94b3c0c6-72b6-4551-a7dc-8a2a8ed33e18/export\n"
    )
    assert server_errors(log) == [
        "[error ] unhandled error [visitmail.web.errors] error_type=OperationalError "
        "path=/api/v1/reports/<id>/export",
        "sqlite3.OperationalError: database is locked",
    ]
    assert server_errors(tmp_path / "missing.log") == []
