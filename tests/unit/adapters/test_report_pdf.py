"""The report PDF: every fact of the report is in its text, Unicode survives, long reports
flow onto more pages, and the bytes are repeatable."""

from __future__ import annotations

import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from visitmail.adapters.render.report_pdf import (
    PdfFontMissing,
    ThreadedReportPdf,
    render_report_pdf,
)
from visitmail.domain.reports import Consent, Gender, Lead, Report, ReportStatus
from visitmail.services.notification_ports import PdfUnavailable

QUESTIONS = [
    ("Interesse an", "Förderanlagen, Schüttgut"),
    ("Budget", "50.000 €"),
    ("Entscheider?", "Ja"),
    ("Nächster Schritt", "Angebot bis Ende März"),
]


def make_report(**changes: object) -> Report:
    report = Report(
        id=uuid.UUID("6f1c2a8e-0000-4000-8000-000000000001"),
        organization_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        lead=Lead(
            gender=Gender.MALE,
            title="Dr.",
            first_name="Jürgen",
            last_name="Müller",
            company="Łódź Straßenbau GmbH",
            position="Einkaufsleiter",
            email="j.mueller@example.com",
            phone="+49 30 123456",
            street="Hauptstraße 5",
            zip="80331",
            city="München",
            country="de",
        ),
        answers={},
        notes="Möchte eine Vorführung vor Ort.\r\nRückruf nach der Messe.",
        consent=Consent(follow_up_email=True),
        status=ReportStatus.EXPORTED,
        captured_by=uuid.uuid4(),
        captured_at=datetime(2025, 3, 4, 10, 30, tzinfo=UTC),
        updated_at=datetime(2025, 3, 4, 11, 0, tzinfo=UTC),
        reporter={"name": "Anna Ärger", "email": "anna@example.com"},
    )
    return replace(report, **changes)  # type: ignore[arg-type]


def text_of(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def squashed(text: str) -> str:
    return "".join(text.split())


def test_every_fact_of_the_report_is_in_the_text() -> None:
    pdf = render_report_pdf(make_report(), "Hannover Messe 2025", QUESTIONS, "de")
    assert pdf.startswith(b"%PDF-")
    pages, text = text_of(pdf)

    assert pages == 1
    for expected in (
        "Hannover Messe 2025",
        "Erfasst am: 04.03.2025, 10:30 UTC",
        "Dr. Jürgen Müller",
        "Łódź Straßenbau GmbH",
        "Einkaufsleiter",
        "Hauptstraße 5",
        "80331 München",
        "j.mueller@example.com",
        "+49 30 123456",
        "Möchte eine Vorführung vor Ort.",
        "Rückruf nach der Messe.",
        "Anna Ärger <anna@example.com>",
        "Seite 1 von 1",
    ):
        assert expected in text
    for label, answer in QUESTIONS:
        assert label in text
        assert answer in text


def test_english_labels_for_other_languages() -> None:
    _, text = text_of(render_report_pdf(make_report(), "Fair", QUESTIONS, "fr"))
    assert "Captured: 2025-03-04 10:30 UTC" in text
    assert "Answers" in text
    assert "Page 1 of 1" in text


def test_long_answers_wrap_and_keep_every_word() -> None:
    answer = " ".join(f"Anforderung{i} für Größe und Maß" for i in range(60))
    pdf = render_report_pdf(make_report(), "Fair", [("Details", answer)], "de")
    _, text = text_of(pdf)
    assert squashed("Details" + answer) in squashed(text)


def test_many_answers_flow_onto_more_pages() -> None:
    questions = [(f"Frage {i}: Wie zufrieden?", f"Antwort {i}: sehr zufrieden") for i in range(80)]
    pages, text = text_of(render_report_pdf(make_report(), "Fair", questions, "de"))

    assert pages > 1
    for label, answer in questions:
        assert label in text
        assert answer in text
    assert f"Seite {pages} von {pages}" in text
    assert text.count("Fair \u00b7 Dr. Jürgen Müller") == pages - 1  # running title


def test_an_answer_longer_than_a_page_is_split_across_pages() -> None:
    answer = "\n".join(f"Zeile {i}" for i in range(200))
    pages, text = text_of(render_report_pdf(make_report(), "Fair", [("Liste", answer)], "de"))
    assert pages >= 3
    assert "Zeile 0" in text
    assert "Zeile 199" in text


def test_a_very_long_event_name_wraps_in_the_title_and_is_cut_in_the_running_title() -> None:
    name = "Internationale Fachmesse für Förder- und Lagertechnik " * 6
    questions = [(f"Frage {i}", f"Antwort {i}") for i in range(80)]
    pages, text = text_of(render_report_pdf(make_report(), name, questions, "de"))
    assert pages > 1
    assert squashed(name) in squashed(text)
    assert "\u2026" in text


def test_no_answers_and_no_notes() -> None:
    report = make_report(notes="", reporter={})
    _, text = text_of(render_report_pdf(report, "Fair", [], "en"))
    assert "No answers." in text
    assert "Notes" not in text
    assert str(report.captured_by) in text  # the reporter's id when no name is known


def test_control_characters_do_not_break_rendering() -> None:
    report = make_report(notes="a\x00b\x07c\td")
    _, text = text_of(render_report_pdf(report, "Fair\x0b", [("Q\x1b", "A\r\nB")], "en"))
    assert "abc" in text


def test_same_input_gives_identical_bytes() -> None:
    questions = [(f"Frage {i}", f"Antwort {i}") for i in range(30)]
    first = render_report_pdf(make_report(), "Fair", questions, "de")
    second = render_report_pdf(make_report(), "Fair", questions, "de")
    assert first == second

    changed = render_report_pdf(make_report(notes="anders"), "Fair", questions, "de")
    assert changed != first


def test_missing_font_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PdfFontMissing, match="fonts-dejavu-core"):
        render_report_pdf(make_report(), "Fair", QUESTIONS, "de", font_dir=tmp_path)


# --- rendering off the event loop, within a budget ----------------------------------------


async def test_the_threaded_renderer_returns_the_same_pdf() -> None:
    report = make_report()
    data = await ThreadedReportPdf().render(report, "Fachmesse 2025", QUESTIONS, "de")
    assert data == render_report_pdf(report, "Fachmesse 2025", QUESTIONS, "de")


async def test_a_render_over_its_budget_fails_saying_so() -> None:
    release = threading.Event()

    def stuck(*_args: object) -> bytes:
        release.wait()  # until the test is done: a render that never finishes in time
        return b""

    pdf = ThreadedReportPdf(budget_s=0.01, render=stuck)
    try:
        with pytest.raises(PdfUnavailable, match=r"took longer than 0\.01 s \(the limit\)"):
            await pdf.render(make_report(), "Fair", QUESTIONS, "de")
    finally:
        release.set()


async def test_a_missing_font_is_unavailable_with_the_fix() -> None:
    def no_font(*_args: object) -> bytes:
        raise PdfFontMissing("DejaVu Sans was not found; install fonts-dejavu-core")

    with pytest.raises(PdfUnavailable, match="fonts-dejavu-core"):
        await ThreadedReportPdf(render=no_font).render(make_report(), "Fair", QUESTIONS, "de")


def test_renders_in_parallel_threads_give_correct_text() -> None:
    """Fonts and subsets are shared between threads; every PDF still reads right."""
    names = ["Łódź", "Ærøskøbing", "Müller", "Straße", "Ελλάδα", "Москва", "Zoë", "Ñandú"]

    def render(name: str) -> str:
        report = make_report(notes=f"Besuch in {name}")
        return " ".join(text_of(render_report_pdf(report, "Messe", QUESTIONS, "de"))[1].split())

    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(render, names * 2))
    for name, text in zip(names * 2, texts, strict=True):
        assert f"Besuch in {name}" in text
