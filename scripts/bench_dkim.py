"""Micro-benchmark: CPU time to DKIM-sign one message, per algorithm and path.

Run from the repository root::

    PYTHONPATH=src python scripts/bench_dkim.py [--chunks N]

For a follow-up without and with a 51 KB attachment it prints the render time and, per
chunk of 100 messages (the bulk chunk), the CPU time per message of: RSA-2048 with
dkimpy's own pure-Python RSA (``dkim.sign``), RSA-2048 as visitmail signs (dkimpy with
the private-key operation in OpenSSL, ``adapters/dkim/keys.py``), and Ed25519 (dkimpy +
PyNaCl). CPU time (``time.process_time``), best of ``--chunks`` chunks, so that other
load on the machine distorts it less. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src")]

import dkim  # noqa: E402

from visitmail.adapters.dkim.keys import DkimpyKeys  # noqa: E402
from visitmail.adapters.render.mime import build_message  # noqa: E402
from visitmail.domain.dkim import SIGNED_HEADERS, DkimAlgorithm, DkimKey  # noqa: E402
from visitmail.domain.mail import Attachment, Mailbox, MailSpec  # noqa: E402

CHUNK = 100


def spec(i: int, pdf: bytes | None) -> MailSpec:
    return MailSpec(
        sender=Mailbox("sales@example.com", "Sales"),
        to=(Mailbox(f"lead{i}@example.de", "Anna Müller"),),
        subject="Ihr Besuch am Stand, Müller GmbH",
        text="Sehr geehrte Frau Dr. Müller,\n\nvielen Dank für das Gespräch.\n" * 5,
        html="<p>Danke, Müller GmbH!</p>" * 5,
        attachments=[Attachment("b.pdf", "application/pdf", pdf)] if pdf else [],
        headers=(
            ("List-Unsubscribe", f"<https://x.example/u/{i}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
        date=datetime.now(UTC),
    )


def per_message(work: Callable[[], object], chunks: int) -> float:
    """Best CPU ms per message over ``chunks`` runs of ``work`` (one chunk each)."""
    best = float("inf")
    for _ in range(chunks):
        start = time.process_time()
        work()
        best = min(best, (time.process_time() - start) * 1000 / CHUNK)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=3)
    args = parser.parse_args()
    material = DkimpyKeys()
    keys = {a: material.generate(a) for a in DkimAlgorithm}
    headers = [h.encode() for h in SIGNED_HEADERS]
    for label, pdf in (("text + html", None), ("with a 51 KB PDF", os.urandom(51_000))):
        specs = [spec(i, pdf) for i in range(CHUNK)]
        mimes = [build_message(s).mime for s in specs]
        render = per_message(lambda specs=specs: [build_message(s) for s in specs], args.chunks)
        print(f"{label} ({len(mimes[0])} bytes): render {render:.2f} ms/message")
        rsa = keys[DkimAlgorithm.RSA].private.encode()
        pure = per_message(
            lambda mimes=mimes, rsa=rsa: [
                dkim.sign(m, b"vm", b"example.com", rsa, canonicalize=(b"relaxed", b"relaxed"),
                          include_headers=headers)
                for m in mimes
            ],
            args.chunks,
        )  # fmt: skip
        print(f"  rsa-2048, dkimpy's pure-Python RSA: {pure:.2f} ms/message")
        for algorithm, made in keys.items():
            key = DkimKey(
                uuid.uuid4(), "vm", "example.com", algorithm, made.public_key, datetime.now(UTC)
            )
            signer = material.signer(key, made.private)
            cost = per_message(
                lambda signer=signer, mimes=mimes: [signer.sign(m) for m in mimes], args.chunks
            )
            print(f"  {algorithm.value}, as visitmail signs: {cost:.2f} ms/message")


if __name__ == "__main__":
    main()
