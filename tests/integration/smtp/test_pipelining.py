"""ESMTP PIPELINING (RFC 2920) in the sending session, against a scripted raw server that
records how the client's bytes arrived."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiosmtplib
import pytest

from visitmail.adapters.smtp.sender import SmtpSender
from visitmail.adapters.smtp.session import Envelope, LostAfterData, SessionLost, SmtpSession
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.smtp_settings import Limits, Security, SmtpSecrets, SmtpSettings, Timeouts
from visitmail.services.outbox_ports import ClaimedMessage


@dataclass
class RawServer:
    port: int
    reads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0


def _lines(buffer: bytearray) -> list[bytes]:
    """Complete lines taken from ``buffer`` (a pipelined write may end mid-line)."""
    lines = []
    while (end := buffer.find(b"\r\n")) >= 0:
        lines.append(bytes(buffer[:end]))
        del buffer[: end + 2]
    return lines


def _server(
    *,
    pipelining: bool,
    reply: Callable[[bytes], bytes],
    drop_after_body: bool = False,
    drop_once: bool = False,
    body_replies: list[bytes] | None = None,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]:
    """``drop_after_body``: close the connection after a body instead of replying (only on
    the first connection with ``drop_once``); ``body_replies``: the replies to the bodies,
    in order (then 250)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handle.server.connections += 1  # type: ignore[attr-defined]
        first = handle.server.connections == 1  # type: ignore[attr-defined]
        writer.write(b"220 raw.example.com ready\r\n")
        in_data = False
        body = bytearray()
        pending = bytearray()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            handle.server.reads.append(chunk)  # type: ignore[attr-defined]
            pending.extend(chunk)
            for line in _lines(pending):
                if in_data:
                    if line == b".":
                        in_data = False
                        handle.server.bodies.append(bytes(body))  # type: ignore[attr-defined]
                        body.clear()
                        if drop_after_body and (first or not drop_once):
                            writer.close()
                            return
                        answer = body_replies.pop(0) if body_replies else b"250 2.0.0 queued\r\n"
                        writer.write(answer)
                    else:
                        body.extend(line + b"\r\n")
                    continue
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
                if verb == b"EHLO":
                    extra = b"250-PIPELINING\r\n" if pipelining else b""
                    writer.write(b"250-raw.example.com\r\n" + extra + b"250 8BITMIME\r\n")
                elif verb == b"DATA":
                    answer = reply(line)
                    writer.write(answer)
                    in_data = answer.startswith(b"354")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(reply(line))
            await writer.drain()

    return handle


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., object]]:
    servers: list[asyncio.Server] = []

    async def _start(**kw: object) -> tuple[RawServer, SmtpSession]:
        handle = _server(**kw)  # type: ignore[arg-type]
        server = await asyncio.start_server(handle, "127.0.0.1", 0)  # type: ignore[arg-type]
        servers.append(server)
        raw = RawServer(port=server.sockets[0].getsockname()[1])
        handle.server = raw  # type: ignore[attr-defined]
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=raw.port, start_tls=False)
        await client.connect()
        await client.ehlo()
        return raw, SmtpSession.adopt(client)

    yield _start
    for s in servers:
        s.close()


def ok_except(bad: dict[bytes, bytes]) -> Callable[[bytes], bytes]:
    def reply(line: bytes) -> bytes:
        for needle, answer in bad.items():
            if needle in line:
                return answer
        return b"354 go ahead\r\n" if line.upper().startswith(b"DATA") else b"250 OK\r\n"

    return reply


async def test_envelope_goes_out_in_one_write_when_pipelining_is_offered(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(pipelining=True, reply=ok_except({}))
    assert session.pipelining
    result = await session.transaction(
        "s@example.com", ["a@example.org", "b@example.org"], b"Subject: x\r\n\r\nhi\r\n", seconds=5
    )
    assert result.data is not None and result.data.code == 250
    envelope = next(r for r in raw.reads if b"MAIL FROM" in r)
    assert envelope == (
        b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.org>\r\n"
        b"RCPT TO:<b@example.org>\r\nDATA\r\n"
    )
    assert raw.bodies == [b"Subject: x\r\n\r\nhi\r\n"]
    await session.quit()


async def test_pipelined_replies_are_matched_to_their_recipients(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(
        pipelining=True, reply=ok_except({b"<gone@": b"550 5.1.1 no such user\r\n"})
    )
    result = await session.transaction(
        "s@example.com", ["a@example.org", "gone@example.org"], b"hi\r\n", seconds=5
    )
    assert result.rcpt["a@example.org"].code == 250
    assert result.rcpt["gone@example.org"].code == 550
    assert result.rcpt["gone@example.org"].enhanced_status == "5.1.1"
    assert result.data is not None and result.data.code == 250
    # the connection is fit for the next message
    again = await session.transaction("s@example.com", ["a@example.org"], b"2\r\n", seconds=5)
    assert again.data is not None and again.data.code == 250
    assert len(raw.bodies) == 2


async def test_refused_sender_in_a_pipeline_answers_for_everyone(start) -> None:  # type: ignore[no-untyped-def]
    def reply(line: bytes) -> bytes:
        if line.startswith(b"MAIL"):
            return b"553 5.7.1 sender not allowed\r\n"
        if line.startswith(b"RSET"):
            return b"250 OK\r\n"
        return b"503 5.5.1 bad sequence\r\n"

    raw, session = await start(pipelining=True, reply=reply)
    result = await session.transaction("s@example.com", ["a@example.org"], b"x\r\n", seconds=5)
    assert result.mail.code == 553
    assert result.data is None
    assert raw.bodies == []


async def test_lost_after_the_final_dot_raises_lost_after_data_with_what_arrived(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(
        pipelining=True,
        reply=ok_except({b"<gone@": b"550 no\r\n"}),
        drop_after_body=True,
    )
    with pytest.raises(LostAfterData) as info:
        await session.transaction(
            "s@example.com", ["a@example.org", "gone@example.org"], b"x\r\n", seconds=5
        )
    assert info.value.result.rcpt["gone@example.org"].code == 550
    assert info.value.result.rcpt["a@example.org"].code == 250
    assert raw.bodies == [b"x\r\n"]
    assert not session.connected


async def test_without_pipelining_each_command_waits_for_its_reply(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(pipelining=False, reply=ok_except({}))
    assert not session.pipelining
    result = await session.transaction("s@example.com", ["a@example.org"], b"x\r\n", seconds=5)
    assert result.data is not None and result.data.code == 250
    commands = [r for r in raw.reads if r.startswith((b"MAIL", b"RCPT", b"DATA"))]
    assert commands == [
        b"MAIL FROM:<s@example.com>\r\n",
        b"RCPT TO:<a@example.org>\r\n",
        b"DATA\r\n",
    ]


async def test_rset_between_messages_rides_in_the_pipelined_write(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(pipelining=True, reply=ok_except({}))
    await session.transaction("s@example.com", ["a@example.org"], b"1\r\n", seconds=5)
    again = await session.transaction(
        "s@example.com", ["b@example.org"], b"2\r\n", seconds=5, reset_first=True
    )
    assert again.data is not None and again.data.code == 250
    second = [r for r in raw.reads if b"MAIL FROM" in r][1]
    assert second == b"RSET\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"


async def test_without_pipelining_rset_goes_first_on_its_own(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(pipelining=False, reply=ok_except({}))
    await session.transaction(
        "s@example.com", ["a@example.org"], b"x\r\n", seconds=5, reset_first=True
    )
    assert raw.reads[1:3] == [b"RSET\r\n", b"MAIL FROM:<s@example.com>\r\n"]


async def test_a_refused_rset_abandons_the_connection(start) -> None:  # type: ignore[no-untyped-def]
    from visitmail.adapters.smtp.session import SessionLost

    raw, session = await start(pipelining=True, reply=ok_except({b"RSET": b"502 no\r\n"}))
    with pytest.raises(SessionLost, match="RSET was refused"):
        await session.transaction(
            "s@example.com", ["a@example.org"], b"x\r\n", seconds=5, reset_first=True
        )
    assert not session.connected
    assert raw.bodies == []


# --- the next message's envelope behind this body (one round trip per message) ---------


async def test_next_envelope_rides_behind_the_body_in_one_write(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(pipelining=True, reply=ok_except({}))
    second = Envelope("s@example.com", ("b@example.org",))
    first = await session.transaction(
        "s@example.com", ["a@example.org"], b"1\r\n", seconds=5, then=second
    )
    assert first.data is not None and first.data.code == 250
    assert session.prepared_for(second)
    writes_before = len(raw.reads)
    again = await session.transaction(
        "s@example.com", ["b@example.org"], b"2\r\n", seconds=5, reset_first=True
    )
    assert again.mail.code == 250
    assert again.rcpt["b@example.org"].code == 250
    assert again.data is not None and again.data.code == 250
    assert raw.bodies == [b"1\r\n", b"2\r\n"]
    assert (
        b"1\r\n.\r\nRSET\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
        in (b"".join(raw.reads))
    )
    # the second message cost one write: its body, no envelope of its own
    assert b"".join(raw.reads[writes_before:]) == b"2\r\n.\r\n"


async def test_refused_body_with_the_next_envelope_in_flight_keeps_replies_matched(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(
        pipelining=True,
        reply=ok_except({b"<gone@": b"550 5.1.1 no such user\r\n"}),
        body_replies=[b"554 5.7.1 content refused\r\n"],
    )
    second = Envelope("s@example.com", ("b@example.org", "gone@example.org"))
    first = await session.transaction(
        "s@example.com", ["a@example.org"], b"spam\r\n", seconds=5, then=second
    )
    assert first.data is not None
    assert (first.data.code, first.data.enhanced_status) == (554, "5.7.1")
    again = await session.transaction(
        "s@example.com", ["b@example.org", "gone@example.org"], b"fine\r\n", seconds=5
    )
    assert again.rcpt["b@example.org"].code == 250
    assert again.rcpt["gone@example.org"].code == 550
    assert again.data is not None and again.data.code == 250
    assert raw.bodies == [b"spam\r\n", b"fine\r\n"]


async def test_lost_after_the_dot_with_the_next_envelope_in_flight(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(pipelining=True, reply=ok_except({}), drop_after_body=True)
    second = Envelope("s@example.com", ("b@example.org",))
    with pytest.raises(LostAfterData):
        await session.transaction(
            "s@example.com", ["a@example.org"], b"1\r\n", seconds=5, then=second
        )
    with pytest.raises(SessionLost):  # the next message never got its body: send it anew
        await session.transaction("s@example.com", ["b@example.org"], b"2\r\n", seconds=5)
    assert raw.bodies == [b"1\r\n"]


async def test_a_refused_rset_behind_the_body_abandons_the_connection_for_the_next(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(pipelining=True, reply=ok_except({b"RSET": b"502 no\r\n"}))
    second = Envelope("s@example.com", ("b@example.org",))
    first = await session.transaction(
        "s@example.com", ["a@example.org"], b"1\r\n", seconds=5, then=second
    )
    assert first.data is not None and first.data.code == 250  # this message is not affected
    with pytest.raises(SessionLost, match="RSET was refused"):
        await session.transaction("s@example.com", ["b@example.org"], b"2\r\n", seconds=5)
    assert not session.connected
    assert raw.bodies == [b"1\r\n"]


async def test_a_connection_prepared_for_another_message_is_abandoned(start) -> None:  # type: ignore[no-untyped-def]
    raw, session = await start(pipelining=True, reply=ok_except({}))
    await session.transaction(
        "s@example.com",
        ["a@example.org"],
        b"1\r\n",
        seconds=5,
        then=Envelope("s@example.com", ("b@example.org",)),
    )
    with pytest.raises(SessionLost, match="prepared for another message"):
        await session.transaction("s@example.com", ["c@example.org"], b"3\r\n", seconds=5)
    assert raw.bodies == [b"1\r\n"]  # nothing was sent in the other message's name


# --- the same through the sender: outcomes per message -------------------------------


def _claimed(address: str, body: bytes) -> ClaimedMessage:
    return ClaimedMessage(
        id=uuid.uuid4(),
        organization_id=ORG,
        message_id=f"<{uuid.uuid4().hex}@example.com>",
        mail_from="s@example.com",
        mime=body,
        open_recipients=[address],
        accepted_before=0,
        attempt=1,
        created_at=datetime.now(UTC),
        expires_at=None,
        possible_duplicate=False,
    )


ORG = uuid.uuid4()


async def _sender_for(**kw: object) -> tuple[RawServer, SmtpSender, SmtpSettings, asyncio.Server]:
    handle = _server(**kw)  # type: ignore[arg-type]
    server = await asyncio.start_server(handle, "127.0.0.1", 0)  # type: ignore[arg-type]
    raw = RawServer(port=server.sockets[0].getsockname()[1])
    handle.server = raw  # type: ignore[attr-defined]
    settings = SmtpSettings(
        host="127.0.0.1",
        port=raw.port,
        security=Security.NONE,
        sender_email="s@example.com",
        sender_name="S",
        timeouts=Timeouts(connect=2, command=5, overall=10),
        limits=Limits(max_connections=1, max_messages_per_connection=50),
    )
    return raw, SmtpSender(NetworkPolicy((ipaddress.ip_network("127.0.0.0/8"),))), settings, server


async def test_sender_reports_unknown_then_sends_the_prepared_next_on_a_new_connection() -> None:
    raw, sender, settings, server = await _sender_for(
        pipelining=True, reply=ok_except({}), drop_after_body=True, drop_once=True
    )
    try:
        first, second = _claimed("a@example.org", b"1\r\n"), _claimed("b@example.org", b"2\r\n")
        lost = await sender.send(ORG, settings, SmtpSecrets(), first, following=second)
        assert lost.unknown_recipients == ["a@example.org"]  # retried once, flagged
        sent = await sender.send(ORG, settings, SmtpSecrets(), second)
        assert [(r.address, r.reply.code) for r in sent.results] == [("b@example.org", 250)]
        assert sent.unknown_recipients == []
        assert raw.bodies == [b"1\r\n", b"2\r\n"]
        assert raw.connections == 2
    finally:
        await sender.close()
        server.close()


async def test_sender_streams_messages_with_one_write_each_and_forgets_cleanly() -> None:
    raw, sender, settings, server = await _sender_for(pipelining=True, reply=ok_except({}))
    try:
        messages = [_claimed(f"r{i}@example.org", f"{i}\r\n".encode()) for i in range(4)]
        for i, message in enumerate(messages[:3]):
            following = messages[i + 1]
            outcome = await sender.send(ORG, settings, SmtpSecrets(), message, following=following)
            assert [r.reply.code for r in outcome.results] == [250]
        sender.forget(messages[3].id)  # prepared, then not sent after all: never delivered
        assert raw.bodies == [b"0\r\n", b"1\r\n", b"2\r\n"]
        assert raw.connections == 1
        again = await sender.send(ORG, settings, SmtpSecrets(), messages[3])  # a new connection
        assert [r.reply.code for r in again.results] == [250]
        assert raw.bodies[-1] == b"3\r\n"
    finally:
        await sender.close()
        server.close()
