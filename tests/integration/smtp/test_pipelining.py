"""ESMTP PIPELINING (RFC 2920) in the sending session, against a scripted raw server that
records how the client's bytes arrived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiosmtplib
import pytest

from visitmail.adapters.smtp.session import LostAfterData, SmtpSession


@dataclass
class RawServer:
    port: int
    reads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def _server(
    *, pipelining: bool, reply: Callable[[bytes], bytes], drop_after_body: bool = False
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 raw.example.com ready\r\n")
        in_data = False
        body = bytearray()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            handle.server.reads.append(chunk)  # type: ignore[attr-defined]
            for line in chunk.split(b"\r\n")[:-1] if chunk.endswith(b"\r\n") else [chunk]:
                if in_data:
                    if line == b".":
                        in_data = False
                        handle.server.bodies.append(bytes(body))  # type: ignore[attr-defined]
                        body.clear()
                        if drop_after_body:
                            writer.close()
                            return
                        writer.write(b"250 2.0.0 queued\r\n")
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
