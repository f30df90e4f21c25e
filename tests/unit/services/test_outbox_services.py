"""Outbox use cases against the in-memory fakes: validation, roles, state conflicts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.support.outbox_fakes import FakeOutboxDatabase
from visitmail.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from visitmail.domain.identity import Principal, User
from visitmail.domain.outbox import MessageKind, MessageStatus
from visitmail.domain.roles import Role
from visitmail.services import outbox
from visitmail.services.outbox_ports import NewMessage, NewRecipient

ORG = uuid.uuid4()
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def actor(role: Role, org: uuid.UUID = ORG) -> Principal:
    return Principal(User(uuid.uuid4(), org, "a@example.com", "A", role, False, NOW), via="token")


def msg(**changes: object) -> NewMessage:
    base: dict[str, object] = {
        "organization_id": ORG,
        "kind": MessageKind.FOLLOW_UP,
        "idempotency_key": "k",
        "message_id": "<m1@example.com>",
        "mail_from": "Sales@Example.com",
        "subject": "Hello",
        "mime": b"x",
        "recipients": [NewRecipient("Lead@Example.ORG")],
    }
    base.update(changes)
    return NewMessage(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"recipients": []}, "recipients"),
        ({"recipients": [NewRecipient("not an address")]}, "recipients[0]"),
        ({"recipients": [NewRecipient("a@example.org", "boss")]}, "recipients[0].role"),
        ({"subject": "Hi\r\nBcc: x@evil.example"}, "subject"),
        ({"message_id": "no-brackets@example.com"}, "message_id"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"mail_from": "a@b\nc"}, "mail_from"),
    ],
)
async def test_enqueue_refuses_what_must_not_reach_the_wire(
    changes: dict[str, object], field: str
) -> None:
    db = FakeOutboxDatabase()
    async with db.uow() as uow:
        with pytest.raises(InvalidInput) as info:
            await outbox.enqueue(uow, msg(**changes), clock=lambda: NOW)
    assert info.value.field == field


async def test_enqueue_many_checks_every_message_before_adding_any() -> None:
    db = FakeOutboxDatabase()
    async with db.uow() as uow:
        with pytest.raises(InvalidInput) as info:
            await outbox.enqueue_many(
                uow,
                [msg(idempotency_key="a"), msg(idempotency_key="b", subject="x\nBcc: y@z.example")],
                clock=lambda: NOW,
            )
        assert info.value.field == "subject"
        assert await uow.outbox.counts(ORG) == dict.fromkeys(MessageStatus, 0)
        done = await outbox.enqueue_many(
            uow, [msg(idempotency_key="a"), msg(idempotency_key="a")], clock=lambda: NOW
        )
        assert [d.created for d in done] == [True, False]
        view = await uow.outbox.get(ORG, done[0].id)
        assert view is not None
        assert [r.address for r in view.recipients] == ["lead@example.org"]  # normalised
    assert db.state.messages == {}


async def test_enqueue_normalizes_addresses_and_is_idempotent() -> None:
    db = FakeOutboxDatabase()
    async with db.uow() as uow:
        first = await outbox.enqueue(uow, msg(), clock=lambda: NOW)
        again = await outbox.enqueue(uow, msg(subject="other"), clock=lambda: NOW)
        await uow.commit()
    assert first.created
    assert not again.created
    assert again.id == first.id
    (stored,) = db.state.messages.values()
    assert stored.view.mail_from == "sales@example.com"
    assert [r.address for r in stored.view.recipients] == ["lead@example.org"]


async def test_reading_needs_event_curator_and_acting_needs_admin() -> None:
    db = FakeOutboxDatabase()
    async with db.uow() as uow:
        created = await outbox.enqueue(uow, msg(), clock=lambda: NOW)
        await uow.commit()
    async with db.uow() as uow:
        with pytest.raises(PermissionDenied):
            await outbox.list_messages(uow, actor(Role.USER))
        assert len(await outbox.list_messages(uow, actor(Role.EVENT_CURATOR))) == 1
        with pytest.raises(PermissionDenied):
            await outbox.cancel_message(uow, actor(Role.EVENT_MANAGER), created.id)
        with pytest.raises(NotFound):
            await outbox.get_message(uow, actor(Role.ADMIN, uuid.uuid4()), created.id)
        cancelled = await outbox.cancel_message(uow, actor(Role.ADMIN), created.id)
        assert cancelled.status is MessageStatus.CANCELLED
        with pytest.raises(Conflict) as info:
            await outbox.cancel_message(uow, actor(Role.ADMIN), created.id)
        assert info.value.field == "status"
        retried = await outbox.retry_message(uow, actor(Role.ADMIN), created.id)
        assert retried.status is MessageStatus.QUEUED
