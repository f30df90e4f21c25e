"""Whose mail the dev inbox shows, against the in-memory fakes: an organization's admins
see the mail whose Message-ID is on its outbox or that its connection test sent; nobody
else sees it, and other roles see nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.fakes import FakeMailbox
from tests.support.outbox_fakes import FakeOutboxDatabase
from visitmail.domain.diagnosis import SENT_MESSAGE_ID, DiagnosisReport, Step, StepName, StepStatus
from visitmail.domain.errors import InvalidInput, NotFound, PermissionDenied
from visitmail.domain.identity import Principal, User
from visitmail.domain.outbox import MessageKind
from visitmail.domain.roles import Role
from visitmail.services import dev_inbox
from visitmail.services.outbox_ports import NewMessage, NewRecipient

ACME, GLOBEX = uuid.uuid4(), uuid.uuid4()
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def actor(org: uuid.UUID, role: Role = Role.ADMIN) -> Principal:
    return Principal(User(uuid.uuid4(), org, "a@example.com", "A", role, False, T0), via="token")


def raw(subject: str, *message_ids: str) -> bytes:
    ids = "".join(f"Message-ID: {m}\r\n" for m in message_ids)
    return f"Subject: {subject}\r\n{ids}\r\nbody\r\n".encode()


async def sent(db: FakeOutboxDatabase, org: uuid.UUID, message_id: str) -> None:
    async with db.uow() as uow:
        await uow.outbox.enqueue(
            NewMessage(
                organization_id=org,
                kind=MessageKind.NOTIFICATION,
                idempotency_key=message_id,
                message_id=message_id,
                mail_from="s@example.com",
                subject="s",
                mime=b"x",
                recipients=[NewRecipient("x@example.org")],
            ),
            T0,
        )
        await uow.commit()


async def subjects(
    db: FakeOutboxDatabase, box: FakeMailbox, who: Principal, **kw: int
) -> list[str]:
    async with db.uow() as uow:
        return [m.subject for m in (await dev_inbox.list_mail(uow, box, who, **kw)).mails]


async def test_each_organization_sees_only_mail_its_outbox_sent() -> None:
    db, box = FakeOutboxDatabase(), FakeMailbox()
    await sent(db, ACME, "<acme@x>")
    await sent(db, GLOBEX, "<globex@x>")
    mine = box.deliver(raw("acme", "<acme@x>"), "s@x", ["a@y"], T0)
    theirs = box.deliver(raw("globex", "<globex@x>"), "s@x", ["a@y"], T0)
    assert await subjects(db, box, actor(ACME)) == ["acme"]
    assert await subjects(db, box, actor(GLOBEX)) == ["globex"]
    async with db.uow() as uow:
        assert (await dev_inbox.open_mail(uow, box, actor(ACME), mine))["Subject"] == "acme"
        for name in (theirs, "20260101T000000-" + "0" * 32 + ".eml", "../etc"):
            with pytest.raises(NotFound):
                await dev_inbox.open_mail(uow, box, actor(ACME), name)


async def test_a_second_message_id_header_claims_nothing() -> None:
    """Someone writing to the sink adds an organization's Message-ID beside their own."""
    db, box = FakeOutboxDatabase(), FakeMailbox()
    await sent(db, ACME, "<acme@x>")
    forged = box.deliver(raw("forged", "<other@x>", "<acme@x>"), "s@x", ["a@y"], T0)
    assert await subjects(db, box, actor(ACME)) == []
    async with db.uow() as uow:
        with pytest.raises(NotFound):
            await dev_inbox.open_mail(uow, box, actor(ACME), forged)


async def test_the_limit_counts_only_the_organizations_own_mail() -> None:
    db, box = FakeOutboxDatabase(), FakeMailbox()
    await sent(db, ACME, "<acme@x>")
    box.deliver(raw("acme", "<acme@x>"), "s@x", ["a@y"], T0)
    for i in range(5):  # newer mail of others does not push it off the page
        box.deliver(raw(f"other {i}", f"<o{i}@x>"), "s@x", ["a@y"], T0 + timedelta(seconds=i + 1))
    assert await subjects(db, box, actor(ACME), limit=2) == ["acme"]


async def test_a_connection_test_message_belongs_to_the_organization_that_ran_it() -> None:
    db, box = FakeOutboxDatabase(), FakeMailbox()
    name = box.deliver(raw("visitmail connection test", "<t@x>"), "s@x", ["a@y"], T0)
    report = DiagnosisReport(
        steps=[
            Step(StepName.CONNECT, StepStatus.PASSED, details={SENT_MESSAGE_ID: "<ignored@x>"}),
            Step(StepName.SEND, StepStatus.PASSED, details={SENT_MESSAGE_ID: "<t@x>"}),
        ]
    )
    dev_inbox.note_test_message(box, actor(ACME), report)
    assert box.noted(ACME) == {"<t@x>"}  # only the send step's Message-ID
    assert await subjects(db, box, actor(ACME)) == ["visitmail connection test"]
    assert await subjects(db, box, actor(GLOBEX)) == []
    async with db.uow() as uow:
        await dev_inbox.open_mail(uow, box, actor(ACME), name)
        with pytest.raises(NotFound):
            await dev_inbox.open_mail(uow, box, actor(GLOBEX), name)


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN])
async def test_only_admins_read_it(role: Role) -> None:
    db, box = FakeOutboxDatabase(), FakeMailbox()
    await sent(db, ACME, "<acme@x>")
    name = box.deliver(raw("acme", "<acme@x>"), "s@x", ["a@y"], T0)
    async with db.uow() as uow:
        with pytest.raises(PermissionDenied):
            await dev_inbox.list_mail(uow, box, actor(ACME, role))
        with pytest.raises(PermissionDenied):
            await dev_inbox.open_mail(uow, box, actor(ACME, role), name)


async def test_pages_and_search_count_only_the_organizations_own_mail() -> None:
    db, box = FakeOutboxDatabase(), FakeMailbox()
    for i in range(5):
        await sent(db, ACME, f"<a{i}@x>")
        box.deliver(raw(f"acme {i}", f"<a{i}@x>"), "s@x", ["a@y"], T0 + timedelta(seconds=i))
    await sent(db, GLOBEX, "<g@x>")
    box.deliver(raw("globex acme", "<g@x>"), "s@x", ["a@y"], T0 + timedelta(seconds=9))
    async with db.uow() as uow:
        first = await dev_inbox.list_mail(uow, box, actor(ACME), limit=2)
        last = await dev_inbox.list_mail(uow, box, actor(ACME), limit=2, offset=4)
        searched = await dev_inbox.list_mail(uow, box, actor(ACME), search=" ACME   3 ")
    assert ([m.subject for m in first.mails], first.total) == (["acme 4", "acme 3"], 5)
    assert ([m.subject for m in last.mails], last.total) == (["acme 0"], 5)
    assert ([m.subject for m in searched.mails], searched.total) == (["acme 3"], 1)


@pytest.mark.parametrize("search", ["x" * 201, "a\r\nb", "a\x00b"])
async def test_a_bad_search_is_refused_naming_the_field(search: str) -> None:
    db, box = FakeOutboxDatabase(), FakeMailbox()
    async with db.uow() as uow:
        with pytest.raises(InvalidInput) as refused:
            await dev_inbox.list_mail(uow, box, actor(ACME), search=search)
    assert refused.value.field == "q"


async def test_delete_all_deletes_the_organizations_mail_and_nothing_else() -> None:
    db, box = FakeOutboxDatabase(), FakeMailbox()
    await sent(db, ACME, "<a@x>")
    await sent(db, GLOBEX, "<g@x>")
    box.deliver(raw("acme", "<a@x>"), "s@x", ["a@y"], T0)
    box.deliver(raw("globex", "<g@x>"), "s@x", ["a@y"], T0)
    box.deliver(raw("nobody's", "<n@x>"), "s@x", ["a@y"], T0)
    async with db.uow() as uow:
        assert await dev_inbox.delete_all(uow, box, actor(ACME)) == 1
        with pytest.raises(PermissionDenied):
            await dev_inbox.delete_all(uow, box, actor(GLOBEX, Role.EVENT_MANAGER))
    assert sorted(m.subject for m in box.received()) == ["globex", "nobody's"]


async def test_a_mail_the_parser_chokes_on_is_listed_for_nobody(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anyone can write to the sink: a mail the email package cannot take apart must not
    break the listing; it is shown to no organization."""
    db, box = FakeOutboxDatabase(), FakeMailbox()
    await sent(db, ACME, "<a@x>")
    box.deliver(raw("fine", "<a@x>"), "s@x", ["a@y"], T0)

    def choke(*_: object) -> None:
        raise IndexError("a parser bug")

    monkeypatch.setattr(dev_inbox.content_of, "attachments", choke)
    odd = box.deliver(raw("odd", "<a@x>"), "s@x", ["a@y"], T0 + timedelta(seconds=1))
    assert (box.summary(odd).subject, box.summary(odd).message_id) == ("(unreadable)", None)
    assert await subjects(db, box, actor(ACME)) == ["fine"]
