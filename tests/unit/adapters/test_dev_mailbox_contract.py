"""One contract for the dev inbox's mailbox port, held by the ``.eml`` directory the SMTP
sink writes (``adapters/devinbox``) and by the in-memory fake."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.fakes import FakeMailbox
from visitmail.adapters.devinbox.sink import Mailbox

T0 = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
Deliver = Callable[[bytes, str, list[str], datetime], str]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["directory", "fake"])
def box(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Mailbox | FakeMailbox, Deliver]:
    if request.param == "fake":
        fake = FakeMailbox(noted_limit=3)
        return fake, fake.deliver
    clock = Clock()
    real = Mailbox(tmp_path / "inbox", clock=clock, noted_limit=3)

    def deliver(raw: bytes, mail_from: str, rcpt_to: list[str], at: datetime) -> str:
        clock.now = at
        return real.store(raw, mail_from, rcpt_to)

    return real, deliver


def mail(subject: str, *message_ids: str) -> bytes:
    """Raw bytes: a sender may put any number of Message-ID headers in (the email
    package refuses to build a second one)."""
    ids = "".join(f"Message-ID: {m}\r\n" for m in message_ids)
    return (
        f"From: sales@example.com\r\nSubject: {subject}\r\n{ids}"
        f"Content-Type: text/plain\r\n\r\nbody of {subject}\r\n"
    ).encode()


def test_received_mail_is_listed_newest_first_with_its_envelope_and_message_id(
    box: tuple[Mailbox | FakeMailbox, Deliver],
) -> None:
    mailbox, deliver = box
    older = deliver(mail("older", "<a@example.com>"), "s@example.com", ["x@example.org"], T0)
    newer = deliver(
        mail("newer", "<b@example.com>"),
        "s@example.com",
        ["y@example.org", "z@example.org"],
        T0 + timedelta(seconds=5),
    )
    listed = mailbox.received()
    assert [m.name for m in listed] == [newer, older]
    first = listed[0]
    assert (first.subject, first.mail_from, first.rcpt_to, first.message_id) == (
        "newer",
        "s@example.com",
        ["y@example.org", "z@example.org"],
        "<b@example.com>",
    )
    assert first.received_at == T0 + timedelta(seconds=5)
    assert mailbox.summary(older).subject == "older"
    body = mailbox.parse(older).get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == "body of older"


def test_a_mail_without_exactly_one_message_id_has_none(
    box: tuple[Mailbox | FakeMailbox, Deliver],
) -> None:
    mailbox, deliver = box
    none = deliver(mail("none"), "s@example.com", ["x@example.org"], T0)
    two = deliver(
        mail("two", "<a@example.com>", "<b@example.com>"), "s@example.com", ["x@example.org"], T0
    )
    assert mailbox.summary(none).message_id is None
    assert mailbox.summary(two).message_id is None


@pytest.mark.parametrize("name", ["nope", "../x.eml", "20260101T000000-x.eml", ".part"])
def test_unknown_names_are_key_errors(
    box: tuple[Mailbox | FakeMailbox, Deliver], name: str
) -> None:
    mailbox, _ = box
    with pytest.raises(KeyError):
        mailbox.summary(name)
    with pytest.raises(KeyError):
        mailbox.parse(name)


def test_noted_message_ids_are_per_organization_and_bounded(
    box: tuple[Mailbox | FakeMailbox, Deliver],
) -> None:
    mailbox, _ = box
    acme, globex = uuid.uuid4(), uuid.uuid4()
    mailbox.note("<1@x>", acme)
    mailbox.note("<2@x>", globex)
    assert (mailbox.noted(acme), mailbox.noted(globex)) == ({"<1@x>"}, {"<2@x>"})
    mailbox.note("<3@x>", acme)
    mailbox.note("<4@x>", acme)  # the limit is 3: the oldest is forgotten
    assert mailbox.noted(acme) == {"<3@x>", "<4@x>"}
    assert mailbox.noted(globex) == {"<2@x>"}


def test_mail_of_the_same_second_is_listed_in_arrival_order(
    box: tuple[Mailbox | FakeMailbox, Deliver],
) -> None:
    mailbox, deliver = box
    names = [
        deliver(mail(f"m{i}", f"<{i}@example.com>"), "s@x", ["a@y"], T0 + timedelta(microseconds=i))
        for i in range(1, 6)
    ]
    assert [m.name for m in mailbox.received()] == names[::-1]
    assert {m.received_at for m in mailbox.received()} == {T0}  # shown to the second


def test_raw_is_the_mail_as_received_and_delete_forgets_it(
    box: tuple[Mailbox | FakeMailbox, Deliver],
) -> None:
    mailbox, deliver = box
    sent = mail("kept", "<k@example.com>")
    kept = deliver(sent, "s@example.com", ["x@example.org"], T0)
    gone = deliver(mail("gone", "<g@example.com>"), "s@example.com", ["x@example.org"], T0)
    assert mailbox.raw(kept) == sent  # without the sink's envelope notes
    mailbox.delete(gone)
    mailbox.delete(gone)  # twice: nothing happens
    mailbox.delete("../../etc/passwd")  # not one of ours: nothing happens
    assert [m.name for m in mailbox.received()] == [kept]
    for read in (mailbox.summary, mailbox.parse, mailbox.raw):
        with pytest.raises(KeyError):
            read(gone)


def test_the_summary_names_sender_attachments_and_search_text(
    box: tuple[Mailbox | FakeMailbox, Deliver],
) -> None:
    mailbox, deliver = box
    message = EmailMessage()
    message["From"] = "=?utf-8?q?J=C3=BCrgen?= <j@example.com>"
    message["To"] = "lead@example.org"
    message["Subject"] = "Catalogue"
    message["Message-ID"] = "<c@example.com>"
    message.set_content("Hello from Hannover")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="a.pdf")
    name = deliver(message.as_bytes(), "s@example.com", ["x@example.org"], T0)
    summary = mailbox.summary(name)
    assert summary.sender == "Jürgen <j@example.com>"
    assert summary.attachments == 1
    for word in ("catalogue", "jürgen", "lead@example.org", "x@example.org", "hannover"):
        assert word in summary.search_text
