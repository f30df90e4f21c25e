"""The visit report as a PDF, attached to notification emails.

One or more A4 pages: the event's name as the title, the capture date, the lead's contact
block, the answers as a two-column table (question | answer; long answers wrap, rows flow
onto further pages and may split across a page when they are taller than a page), the
notes, and who captured the report. Page numbers in the footer.

Text is set in DejaVu Sans (a TrueType font, embedded as a subset), so every Latin,
Greek and Cyrillic character renders: "Müller", "Łódź", "Straße". The font comes from the
operating system (Debian/Ubuntu: ``fonts-dejavu-core``); without it rendering fails with
``PdfFontMissing`` saying what to install, rather than silently dropping characters.

Output is deterministic: the same input gives the same bytes (the document's creation
date is the report's ``updated_at``, and nothing else depends on the clock).

Speed: parsing the TrueType files and subsetting them is most of the work, so both are done
once per process, not per PDF. Each font file is parsed once (:class:`_FontSource`) and every
document gets a light copy that shares the parsed, read-only tables and has its own record
of the glyphs it uses. At output, each font's glyph set is widened to a fixed base set
(:data:`BASE_CHARACTERS`: ASCII, Latin-1, common punctuation), so most reports need the same
subset, and the subset font (its bytes and glyph ids) is cached by glyph set
(:data:`MAX_CACHED_SUBSETS`) and embedded as is: fpdf2's own subsetting step is told to skip
a font that is already a subset (:class:`_Subsetter`, installed into ``fpdf.output``; any
other font goes through fontTools as before). Rendering is thread-safe (the shared state is
read-only or behind a lock).
"""

from __future__ import annotations

import asyncio
import copy
import io
import re
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fpdf.output
from fontTools import subset as ftsubset  # type: ignore[import-untyped]
from fontTools import ttLib
from fpdf import FPDF
from fpdf.enums import Align, MethodReturnValue, XPos, YPos
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer

from visitmail.domain.reports import Report
from visitmail.services.notification_ports import PdfUnavailable

__all__ = ["PdfFontMissing", "ThreadedReportPdf", "render_report_pdf"]

FONT_FAMILY = "DejaVu"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
#: Where distributions put DejaVu Sans (Debian/Ubuntu, Fedora, Arch, Alpine, macOS Homebrew).
FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
    Path("/opt/homebrew/share/fonts"),
)

_MARGIN = 18.0  # mm
_LABEL_WIDTH = 62.0  # mm, the question column
_BODY_SIZE = 10.0  # pt
_LINE = 5.0  # mm per body line
_KEEP_TOGETHER = 8  # rows up to this many lines move to the next page rather than split
_PAGES_ALIAS = "{vm-pages}"  # replaced by the page count when the document is written
_EMPTY = "\u2013"  # an en dash for an empty answer
_GREY = (110, 110, 110)
_RULE = (210, 210, 210)
# Control characters a PDF text string should not carry (tab and newline are handled).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


#: Characters every embedded font subset contains, so that most reports share one subset.
BASE_CHARACTERS = (
    "".join(chr(c) for c in range(0x20, 0x7F))
    + "".join(chr(c) for c in range(0xA0, 0x100))
    + "\u2013\u2014\u2018\u2019\u201a\u201c\u201d\u201e\u2022\u2026\u20ac"
)
MAX_CACHED_SUBSETS = 64
#: How long one PDF may take, waiting for a render thread included (seconds); a render
#: that takes longer fails its notification (``PdfUnavailable``) instead of stalling it.
#: Generous: a PDF takes milliseconds, but the first one in a process parses the fonts,
#: and an overloaded machine must not turn that into failed notifications.
PDF_BUDGET_S = 15.0
#: Render threads: PDFs are CPU-bound, so more threads than cores only add waiting.
PDF_THREADS = 2


class PdfFontMissing(RuntimeError):
    """DejaVu Sans is not installed where visitmail looks for it (an operator's fix)."""


@dataclass(frozen=True, slots=True)
class _Labels:
    captured: str
    contact: str
    answers: str
    no_answers: str
    notes: str
    reporter: str
    email: str
    phone: str
    mobile: str
    website: str
    page: str  # with {page} and {pages}
    date_format: str


_LABELS: dict[str, _Labels] = {
    "en": _Labels(
        captured="Captured",
        contact="Contact",
        answers="Answers",
        no_answers="No answers.",
        notes="Notes",
        reporter="Captured by",
        email="Email",
        phone="Phone",
        mobile="Mobile",
        website="Website",
        page="Page {page} of {pages}",
        date_format="%Y-%m-%d %H:%M UTC",
    ),
    "de": _Labels(
        captured="Erfasst am",
        contact="Kontakt",
        answers="Antworten",
        no_answers="Keine Antworten.",
        notes="Notizen",
        reporter="Erfasst von",
        email="E-Mail",
        phone="Telefon",
        mobile="Mobil",
        website="Webseite",
        page="Seite {page} von {pages}",
        date_format="%d.%m.%Y, %H:%M UTC",
    ),
}


def find_fonts(font_dir: Path | None = None) -> dict[str, Path]:
    """The regular and bold DejaVu Sans files, from ``font_dir`` or the usual system
    places. Raises ``PdfFontMissing`` naming where it looked and what to install."""
    places = (font_dir,) if font_dir is not None else FONT_DIRS
    for place in places:
        found = {style: place / name for style, name in FONT_FILES.items()}
        if all(path.is_file() for path in found.values()):
            return found
    looked = ", ".join(str(p) for p in places)
    raise PdfFontMissing(
        f"DejaVu Sans ({', '.join(FONT_FILES.values())}) was not found in {looked}; "
        "install it (Debian/Ubuntu: apt-get install fonts-dejavu-core)"
    )


def render_report_pdf(
    report: Report,
    event_name: str,
    questions: Sequence[tuple[str, str]],
    language: str,
    *,
    font_dir: Path | None = None,
) -> bytes:
    """Render ``report`` as a PDF and return its bytes.

    ``questions`` are ``(label, formatted answer)`` pairs in questionnaire order (the
    caller formats values: options joined, booleans as words, in ``language``).
    ``language`` is a BCP 47 tag; German (``de``, ``de-AT``, …) gets German labels,
    anything else English. Raises ``PdfFontMissing`` when the font is not installed.
    """
    labels = _LABELS.get(language.split("-", 1)[0].lower(), _LABELS["en"])
    pdf = _ReportDocument(labels, str(report.id))
    for style, path in find_fonts(font_dir).items():
        _font_source(path, style).add_to(pdf, FONT_FAMILY)
    lead = report.lead
    person = " ".join(p for p in (lead.title, lead.first_name, lead.last_name) if p.strip())
    reporter = _reporter(report)

    title = _clean(" \u00b7 ".join(p for p in (event_name, person or lead.company) if p.strip()))
    pdf.set_title(title)
    pdf.running_title = title.replace("\n", " ")
    pdf.set_author(_clean(reporter))
    pdf.set_creator("visitmail")
    pdf.set_producer("visitmail")
    pdf.set_lang(language or "en")
    pdf.set_creation_date(_utc(report.updated_at))
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(auto=True, margin=_MARGIN)
    pdf.add_page()

    pdf.set_font(FONT_FAMILY, "B", 17)
    pdf.multi_cell(0, 8, _clean(event_name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT_FAMILY, "", 9)
    pdf.set_text_color(*_GREY)
    captured = _utc(report.captured_at).strftime(labels.date_format)
    pdf.cell(0, 6, f"{labels.captured}: {captured}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)

    pdf.heading(labels.contact)
    if person:
        pdf.set_font(FONT_FAMILY, "B", 11)
        pdf.multi_cell(0, 6, _clean(person), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT_FAMILY, "", _BODY_SIZE)
    for line in _contact_lines(report, labels):
        pdf.multi_cell(0, _LINE, _clean(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.heading(labels.answers)
    if questions:
        for label, answer in questions:
            pdf.two_column_row(_clean(label), _clean(answer) or _EMPTY)
    else:
        pdf.set_font(FONT_FAMILY, "", _BODY_SIZE)
        pdf.cell(0, _LINE, labels.no_answers, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if report.notes.strip():
        pdf.heading(labels.notes)
        pdf.set_font(FONT_FAMILY, "", _BODY_SIZE)
        text = _clean(report.notes.strip())
        pdf.multi_cell(0, _LINE, text, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.heading(labels.reporter)
    pdf.set_font(FONT_FAMILY, "", _BODY_SIZE)
    pdf.multi_cell(0, _LINE, _clean(reporter), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output(output_producer_class=_CachedSubsetOutput))


Renderer = Callable[[Report, str, Sequence[tuple[str, str]], str], bytes]
_EXECUTOR = ThreadPoolExecutor(max_workers=PDF_THREADS, thread_name_prefix="visitmail-pdf")


class ThreadedReportPdf:
    """:class:`~visitmail.services.notification_ports.ReportPdf`: renders on a small pool
    of its own threads (CPU-bound work off the event loop, and never more than
    :data:`PDF_THREADS` at once), within ``budget_s`` seconds including the wait for a
    thread. Raises :class:`PdfUnavailable` when the font is missing or the budget is
    exceeded, saying which (a render over budget finishes in its thread, unused)."""

    def __init__(
        self,
        *,
        budget_s: float = PDF_BUDGET_S,
        render: Renderer = render_report_pdf,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.budget_s = budget_s
        self._render = render
        self._executor = executor or _EXECUTOR

    async def render(
        self, report: Report, event_name: str, questions: Sequence[tuple[str, str]], language: str
    ) -> bytes:
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(
            self._executor, self._render, report, event_name, questions, language
        )
        try:
            return await asyncio.wait_for(job, self.budget_s)
        except TimeoutError:
            raise PdfUnavailable(
                f"rendering it took longer than {self.budget_s:g} s (the limit); "
                "export again to retry"
            ) from None
        except PdfFontMissing as exc:
            raise PdfUnavailable(str(exc)) from exc


# --- fonts parsed once, subsets cached ---------------------------------------------------


class _FontSource:
    """One TrueType file, parsed once; hands each document a light copy of the font and
    caches subset fonts by glyph set."""

    def __init__(self, path: Path, style: str) -> None:
        self.path = path
        self.style = style
        self._template = _SourcedFont(FPDF(), path, f"{FONT_FAMILY.lower()}{style}", style)
        self._template.source = self
        self._subsets: OrderedDict[frozenset[str], _SubsetFont] = OrderedDict()
        self._lock = threading.Lock()

    def add_to(self, pdf: FPDF, family: str) -> None:
        """What ``pdf.add_font(family, style, path)`` does, without parsing the file."""
        fontkey = f"{family.lower()}{self.style}"
        font = copy.copy(self._template)  # shares the parsed tables, cmap and widths
        font.i = len(pdf.fonts) + 1
        font.fontkey = fontkey
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.subset = SubsetMap(font)
        pdf.fonts[fontkey] = font

    def subset_font(self, glyph_names: frozenset[str]) -> _SubsetFont:
        """A font holding just ``glyph_names`` (from the cache, or made and cached)."""
        with self._lock:
            found = self._subsets.get(glyph_names)
            if found is not None:
                self._subsets.move_to_end(glyph_names)
                return found
        full = ttLib.TTFont(self.path, recalcTimestamp=False, lazy=True)
        # The options fpdf2 itself subsets with (fpdf/output.py), so the embedded font is
        # what fpdf2 would have embedded.
        options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True)
        options.drop_tables += _FPDF_DROPPED_TABLES
        subsetter = ftsubset.Subsetter(options)
        subsetter.populate(glyphs=sorted(glyph_names))
        subsetter.subset(full)
        ids = {name: gid for gid, name in enumerate(full.getGlyphOrder())}
        buffer = io.BytesIO()
        full.save(buffer)
        made = _SubsetFont(buffer.getvalue(), ids)
        with self._lock:
            self._subsets[glyph_names] = made
            while len(self._subsets) > MAX_CACHED_SUBSETS:
                self._subsets.popitem(last=False)
        return made


_FPDF_DROPPED_TABLES = [
    "FFTM",
    "GDEF",
    "GPOS",
    "GSUB",
    "MATH",
    "hdmx",
    "meta",
    "sbix",
    "CBDT",
    "CBLC",
    "EBDT",
    "EBLC",
    "EBSC",
    "SVG ",
    "CPAL",
    "COLR",
]


class _SubsetFont:
    """A finished subset font as fpdf2's output step uses it: its glyph ids by name and its
    bytes. Immutable, shared by every document that needs this glyph set."""

    def __init__(self, data: bytes, ids: dict[str, int]) -> None:
        self._data = data
        self._ids = ids

    def getGlyphID(self, name: str) -> int:  # noqa: N802 - fontTools' name
        return self._ids[name]

    def save(self, file: io.BytesIO) -> None:
        file.write(self._data)

    def __contains__(self, table: object) -> bool:
        return False  # no CFF table: fpdf2 embeds the bytes as TrueType

    def close(self) -> None:
        """fpdf2 closes a document's fonts after output; this one is shared and has no file."""


class _Subsetter:
    """fontTools' ``Subsetter`` for fpdf2's output step, except that a font which is
    already a cached subset (:class:`_SubsetFont`) is left as it is."""

    def __init__(self, options: ftsubset.Options) -> None:
        self._options = options
        self._populate: dict[str, Any] = {}

    def populate(self, **kwargs: Any) -> None:
        self._populate = kwargs

    def subset(self, font: Any) -> None:
        if isinstance(font, _SubsetFont):
            return
        real = ftsubset.Subsetter(self._options)
        real.populate(**self._populate)
        real.subset(font)


fpdf.output.ftsubset = types.SimpleNamespace(  # type: ignore[attr-defined]
    Options=ftsubset.Options, Subsetter=_Subsetter
)


class _SourcedFont(TTFFont):
    """fpdf2's TrueType font, knowing the :class:`_FontSource` it was copied from."""

    __slots__ = ("source",)
    source: _FontSource


_SOURCES: dict[tuple[Path, str], _FontSource] = {}
_SOURCES_LOCK = threading.Lock()


def _font_source(path: Path, style: str) -> _FontSource:
    key = (path, style)
    with _SOURCES_LOCK:
        source = _SOURCES.get(key)
        if source is None:
            source = _SOURCES[key] = _FontSource(path, style)
        return source


class _CachedSubsetOutput(OutputProducer):
    """fpdf2's output, with each of our fonts swapped for its cached subset before fpdf2
    embeds it (see :class:`_Subsetter`)."""

    def _add_fonts(self, *args: Any, **kwargs: Any) -> Any:
        for font in self.fpdf.fonts.values():
            if not isinstance(font, _SourcedFont):
                continue
            if len(font.subset):
                for char in BASE_CHARACTERS:
                    font.subset.pick(ord(char))
            names = frozenset(font.subset.get_all_glyph_names())
            font.ttfont = font.source.subset_font(names)
        return super()._add_fonts(*args, **kwargs)


class _ReportDocument(FPDF):
    """An A4 page with a footer; ``heading`` and ``two_column_row`` keep the layout in
    one place."""

    def __init__(self, labels: _Labels, report_id: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._labels = labels
        self._report_id = report_id
        self.running_title = ""  # on every page after the first: whose report this is
        self.alias_nb_pages(_PAGES_ALIAS)

    def header(self) -> None:
        if self.page_no() == 1 or not self.running_title:
            return
        self.set_font(FONT_FAMILY, "", 8)
        self.set_text_color(*_GREY)
        title = self.running_title
        while len(title) > 1 and self.get_string_width(title + "\u2026") > self.epw:
            title = title[: max(1, len(title) * 9 // 10)]
        if title != self.running_title:
            title += "\u2026"
        self.cell(0, 5, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT_FAMILY, "", 8)
        self.set_text_color(*_GREY)
        self.cell(0, 5, self._report_id, align=Align.L)
        self.set_x(self.l_margin)
        text = self._labels.page.format(page=self.page_no(), pages=_PAGES_ALIAS)
        self.cell(0, 5, text, align=Align.R)
        self.set_text_color(0, 0, 0)

    def heading(self, text: str) -> None:
        """A section title with a rule under it, kept with at least two lines below."""
        if self.get_y() + 9 + 2 * _LINE > self.page_break_trigger:
            self.add_page()
        self.ln(4)
        self.set_font(FONT_FAMILY, "B", 12)
        self.cell(0, 6, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._rule(dark=True)
        self.ln(1.5)

    def two_column_row(self, label: str, value: str) -> None:
        """One question and its answer side by side, each wrapped in its column; a row
        of up to ``_KEEP_TOGETHER`` lines is never split across pages, a taller one is
        split line by line (so no answer is ever too long to print)."""
        value_width = self.epw - _LABEL_WIDTH
        self.set_font(FONT_FAMILY, "B", _BODY_SIZE)
        label_lines = self._wrap(label, _LABEL_WIDTH)
        self.set_font(FONT_FAMILY, "", _BODY_SIZE)
        value_lines = self._wrap(value, value_width)
        height = max(len(label_lines), len(value_lines))
        needed = height * _LINE + 2
        if height <= _KEEP_TOGETHER and self.get_y() + needed > self.page_break_trigger:
            self.add_page()
        y = self.get_y() + 1
        for i in range(height):
            if y + _LINE > self.page_break_trigger:
                self.add_page()
                y = self.get_y()
            if i < len(label_lines):
                self.set_font(FONT_FAMILY, "B", _BODY_SIZE)
                self.set_xy(self.l_margin, y)
                self.cell(_LABEL_WIDTH, _LINE, label_lines[i])
            if i < len(value_lines):
                self.set_font(FONT_FAMILY, "", _BODY_SIZE)
                self.set_xy(self.l_margin + _LABEL_WIDTH, y)
                self.cell(value_width, _LINE, value_lines[i])
            y += _LINE
        self.set_xy(self.l_margin, y + 1)
        self._rule(dark=False)

    def _wrap(self, text: str, width: float) -> list[str]:
        lines = self.multi_cell(width, _LINE, text, dry_run=True, output=MethodReturnValue.LINES)
        if not isinstance(lines, list):  # output=LINES returns the list alone
            raise TypeError(f"fpdf2 returned {type(lines).__name__} for wrapped lines")
        return [str(line) for line in lines] or [""]

    def _rule(self, *, dark: bool) -> None:
        self.set_draw_color(*((0, 0, 0) if dark else _RULE))
        self.set_line_width(0.3 if dark else 0.2)
        y = self.get_y()
        self.line(self.l_margin, y, self.w - self.r_margin, y)
        self.set_draw_color(0, 0, 0)


def _contact_lines(report: Report, labels: _Labels) -> list[str]:
    lead = report.lead
    place = " ".join(p for p in (lead.zip, lead.city) if p.strip())
    role = ", ".join(p for p in (lead.position, lead.department) if p.strip())
    lines = [
        lead.company,
        role,
        lead.street,
        place,
        ", ".join(p for p in (lead.state, lead.country.upper()) if p.strip()),
    ]
    for label, value in (
        (labels.email, lead.email),
        (labels.phone, lead.phone),
        (labels.mobile, lead.mobile),
        (labels.website, lead.website),
    ):
        if value.strip():
            lines.append(f"{label}: {value}")
    return [line for line in lines if line.strip()]


def _reporter(report: Report) -> str:
    name = report.reporter.get("name", "").strip()
    email = report.reporter.get("email", "").strip()
    if name and email:
        return f"{name} <{email}>"
    return name or email or str(report.captured_by)


def _clean(text: str) -> str:
    """Newlines unified, tabs as spaces, other control characters dropped (a PDF text
    string would show them as boxes or break the layout)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return _CONTROL.sub("", text)


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive time is taken to be UTC already (the database stores UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
