"""Micro-benchmark: time to build one message's MIME, old (email package) vs new builder.

Run from the repository root::

    PYTHONPATH=src:. python scripts/bench_mime.py [--rounds N]

It prints, for a few typical follow-up / notification shapes, the median per-message build
CPU time of the old builder (``tests/unit/adapters/mime_reference.py``, the ``MIMEPart`` +
generator one) and of ``visitmail.adapters.render.mime.build_message``, and whether both
produce the same bytes (boundary strings of messages with attachments differ by design,
so they are compared with the boundaries blanked out). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("src", ".")]

from tests.unit.adapters.mime_reference import build_message as old_build  # noqa: E402
from visitmail.adapters.render.mime import ATTACHMENT_CACHE  # noqa: E402
from visitmail.adapters.render.mime import build_message as new_build  # noqa: E402
from visitmail.domain.mail import Attachment, BuiltMessage, Mailbox, MailSpec  # noqa: E402

_BOUNDARY = re.compile(rb"=_vm_[0-9a-f]{32}")
_PDF = (bytes(range(256)) * 200)[: 51 * 1024]  # a 51 KB "brochure"

_TEXT = (
    "Sehr geehrter Herr Müller,\n\n"
    "vielen Dank für Ihren Besuch an unserem Stand auf der Hannover Messe. Wie besprochen "
    "senden wir Ihnen anbei unsere Broschüre zu den Förderanlagen.\n\n"
) * 4 + "Mit freundlichen Grüßen\nAnna Ärger\nVertrieb Süd\n"
_HTML = "<html><body>" + "".join(f"<p>{p}</p>" for p in _TEXT.split("\n\n")) + "</body></html>"


def _spec(index: int, *, html: bool, attachment: bool) -> MailSpec:
    return MailSpec(
        sender=Mailbox("sales@example.com", "Vertrieb Müller GmbH"),
        to=[Mailbox(f"lead{index}@kunde.example", f"Jürgen Müller {index}")],
        reply_to=Mailbox("anna@example.com", "Anna Ärger"),
        subject=f"Ihr Besuch bei Müller & Söhne auf der Hannover Messe 2025 (#{index})",
        text=_TEXT,
        html=_HTML if html else None,
        attachments=[Attachment("Broschüre Förderanlagen 2025.pdf", "application/pdf", _PDF)]
        if attachment
        else [],
        headers=[("List-Unsubscribe", f"<https://mail.example.com/u/{index:08d}>")],
        message_id=f"<fu.{index}@example.com>",
        date=datetime(2025, 3, 4, 10, 30, tzinfo=UTC),
    )


def _per_message_us(build: Callable[[MailSpec], BuiltMessage], specs: list[MailSpec]) -> float:
    # CPU time of this process: on a shared, loaded machine wall time mostly measures
    # the other processes.
    started = time.process_time()
    for spec in specs:
        build(spec)
    return (time.process_time() - started) / len(specs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="repetitions (median is shown)")
    parser.add_argument("--messages", type=int, default=200, help="messages per repetition")
    args = parser.parse_args()

    shapes = {
        "text only": {"html": False, "attachment": False},
        "text + html": {"html": True, "attachment": False},
        "text + html + 51 KB PDF": {"html": True, "attachment": True},
    }
    columns = ("old µs/msg", "new µs/msg", "speed-up")
    print(f"{'shape (CPU time)':<26}{columns[0]:>12}{columns[1]:>12}{columns[2]:>10}  same bytes")
    for label, options in shapes.items():
        specs = [_spec(i, **options) for i in range(args.messages)]
        olds, news = [], []
        for _ in range(args.rounds):  # interleaved, so load on the machine hits both alike
            olds.append(_per_message_us(old_build, specs))
            news.append(_per_message_us(new_build, specs))
        old, new = statistics.median(olds), statistics.median(news)
        same = all(
            _BOUNDARY.sub(b"", old_build(s).mime) == _BOUNDARY.sub(b"", new_build(s).mime)
            for s in specs[:20]
        )
        print(f"{label:<26}{old:>12.0f}{new:>12.0f}{old / new:>9.1f}x  {same}")
    # A different file on every message (a notification's own report PDF): every build
    # encodes its attachment.
    distinct = [
        dataclasses.replace(
            spec,
            attachments=[
                Attachment(f"report-{i}.pdf", "application/pdf", i.to_bytes(4, "big") + _PDF)
            ],
        )
        for i, spec in enumerate(_spec(i, html=True, attachment=False) for i in range(100))
    ]
    cold = statistics.median(_per_message_us(new_build, distinct) for _ in range(3))
    print(f"new, a distinct 51 KB PDF on every message (cache misses): {cold:.0f} µs/msg")
    print(f"attachment cache: {len(ATTACHMENT_CACHE)} parts, {ATTACHMENT_CACHE.size_bytes} bytes")


if __name__ == "__main__":
    main()
