"""Replies to pipelined commands go out in one transport write; no reply is ever held.

Why these tests: the sessions queue replies on the connection (``Connection.send``) and the
queue is written when the protocol core has no further complete command buffered (RFC 2920
section 3.1, RFC 2449 section 6). Both halves are checked with real sockets, in-process: the
server's ``StreamWriter.write`` is wrapped to count transport writes, the client sends a
group of commands with one ``sendall`` and reads until every reply is in (no timing), and a
single command (or one followed by a partial line) must be answered without the client
sending anything more.
"""

from __future__ import annotations

import asyncio
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mailwing.config import Settings
from mailwing.server.connection import Connection
from mailwing.server.imap_session import handle_imap
from mailwing.server.pop3_session import handle_pop3
from mailwing.server.smtp_session import handle_smtp
from mailwing.services.auth import Authenticator
from mailwing.services.context import AppContext
from mailwing.services.passwords import hash_password
from mailwing.storage import Delivery, Storage, open_storage
from tests.unit.test_connection_write import connected

PASSWORD = "secret"
USER = "u@x.test"
MESSAGE = b"Subject: hello\r\n\r\n.a dotted line\r\nbody\r\n"

Handler = Callable[[AppContext, Connection], Awaitable[None]]


class Env:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.settings = Settings()
        self.settings.server.hostname = "mail.test"
        self.settings.auth.allow_plaintext = True
        self.settings.auth.failure_delay = 0.0
        self.settings.auth.check_spf = False
        self.settings.auth.check_dkim = False
        self.settings.auth.check_dmarc = False
        self.ctx = AppContext(self.settings, storage, Authenticator(storage, self.settings.auth))
        self.writes: list[bytes] = []  # every transport write of every server connection
        self.written: list[Any] = []  # the same, the objects as passed (for identity)
        self.servers: list[asyncio.Server] = []

    async def listen(self, handler: Handler, listener: str) -> int:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            original = w.write

            def counted(data: Any) -> None:
                self.writes.append(bytes(data))
                self.written.append(data)
                original(data)

            w.write = counted  # type: ignore[method-assign]
            conn = Connection(r, w, listener=listener, ssl_context=None, idle_timeout=30)
            try:
                await handler(self.ctx, conn)
            finally:
                await conn.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    storage = await open_storage(f"sqlite:///{tmp_path / 'm.db'}", data_dir=tmp_path)
    await storage.upgrade()
    user, _ = await storage.add_user(USER, hash_password(PASSWORD), create_domain=True)
    mailbox = await storage.get_mailbox(user.id, "INBOX")
    assert mailbox is not None
    for _ in range(2):
        info = await storage.store_content(MESSAGE)
        await storage.append(info, [Delivery(mailbox.id)])
    e = Env(storage)
    yield e
    for s in e.servers:
        s.close()
    await storage.close()


class Client:
    """A blocking client (run in a thread: the server shares the test's event loop)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def until(self, end: bytes) -> bytes:
        """Read until the received bytes end with ``end``; return them all."""
        while not self.buf.endswith(end):
            chunk = self.sock.recv(65536)
            assert chunk, f"closed after {self.buf!r}"
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed after {self.buf!r}"
            self.buf += chunk
        out, self.buf = self.buf[:size], self.buf[size:]
        return out

    def through(self, prefix: bytes) -> bytes:
        """Read until a whole line starting with ``prefix`` is in; return up to its end."""
        while True:
            start = 0
            while (end := self.buf.find(b"\r\n", start)) >= 0:
                if self.buf.startswith(prefix, start):
                    out, self.buf = self.buf[: end + 2], self.buf[end + 2 :]
                    return out
                start = end + 2
            chunk = self.sock.recv(65536)
            assert chunk, f"closed after {self.buf!r}"
            self.buf += chunk

    def ask(self, line: bytes, end: bytes = b"\r\n") -> bytes:
        self.sock.sendall(line)
        return self.until(end)

    def close(self) -> None:
        self.sock.close()


def in_thread(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    return asyncio.to_thread(fn, *args)


# -- POP3 -----------------------------------------------------------------------------------
POP3_GROUP = [b"STAT\r\n", b"LIST\r\n", b"UIDL\r\n", b"RETR 1\r\n", b"TOP 2 0\r\n", b"NOOP\r\n"]


def _pop3_login(port: int) -> Client:
    c = Client(port)
    c.until(b"\r\n")
    assert c.ask(f"USER {USER}\r\n".encode()).startswith(b"+OK")
    assert c.ask(f"PASS {PASSWORD}\r\n".encode()).startswith(b"+OK")
    return c


async def test_pop3_pipelined_replies_share_one_write(env: Env) -> None:
    port = await env.listen(handle_pop3, "pop3")

    def one_by_one() -> bytes:
        c = _pop3_login(port)
        ends = [b"\r\n", b"\r\n.\r\n", b"\r\n.\r\n", b"\r\n.\r\n", b"\r\n.\r\n", b"\r\n"]
        out = b"".join(c.ask(cmd, end) for cmd, end in zip(POP3_GROUP, ends, strict=True))
        c.close()
        return out

    expected = await in_thread(one_by_one)
    assert expected.count(b"+OK") == len(POP3_GROUP)

    def pipelined() -> tuple[bytes, int]:
        c = _pop3_login(port)
        before = len(env.writes)
        c.sock.sendall(b"".join(POP3_GROUP))
        out = c.exactly(len(expected))
        writes = len(env.writes) - before
        c.close()
        return out, writes

    out, writes = await in_thread(pipelined)
    assert out == expected
    assert writes == 1  # six replies, a RETR and a TOP among them: one write


async def test_pop3_retr_alone_is_one_write(env: Env) -> None:
    """Status line, dot-stuffed body and terminator of a small message: one write."""
    port = await env.listen(handle_pop3, "pop3")

    def session() -> tuple[bytes, list[bytes]]:
        c = _pop3_login(port)
        before = len(env.writes)
        out = c.ask(b"RETR 1\r\n", b"\r\n.\r\n")
        written = env.writes[before:]
        c.close()
        return out, written

    out, written = await in_thread(session)
    assert out.endswith(b"\r\n..a dotted line\r\nbody\r\n.\r\n")
    assert written == [out]


async def test_pop3_reply_not_held_behind_a_partial_line(env: Env) -> None:
    port = await env.listen(handle_pop3, "pop3")

    def session() -> None:
        c = _pop3_login(port)
        assert c.ask(b"NOOP\r\n") == b"+OK\r\n"  # one command: answered without more input
        # a complete command followed by half of the next: the first is answered now
        assert c.ask(b"STAT\r\nNO").startswith(b"+OK 2 ")
        assert c.ask(b"OP\r\n") == b"+OK\r\n"
        c.close()

    await in_thread(session)


# -- SMTP -----------------------------------------------------------------------------------
async def test_smtp_pipelined_groups_share_one_write_each(env: Env) -> None:
    port = await env.listen(handle_smtp, "smtp")

    def session() -> list[int]:
        c = Client(port)
        counts = []
        assert c.until(b"\r\n").startswith(b"220")
        c.sock.sendall(b"EHLO client.test\r\n")
        assert b"PIPELINING" in c.through(b"250 ")
        before = len(env.writes)
        c.sock.sendall(f"MAIL FROM:<a@remote.test>\r\nRCPT TO:<{USER}>\r\n"
                       f"RCPT TO:<{USER}>\r\nDATA\r\n".encode())
        out = c.through(b"354 ")
        assert [line[:3] for line in out.splitlines()] == [b"250", b"250", b"250", b"354"]
        counts.append(len(env.writes) - before)
        before = len(env.writes)
        c.sock.sendall(b"Subject: s\r\n\r\nbody\r\n.\r\nNOOP\r\n")
        out = c.through(b"250 ")  # the message's
        out += c.through(b"250 ")  # NOOP's
        assert [line[:3] for line in out.splitlines()] == [b"250", b"250"]
        counts.append(len(env.writes) - before)
        assert c.ask(b"NOOP\r\n").startswith(b"250")  # alone: answered at once
        c.close()
        return counts

    assert await in_thread(session) == [1, 1]


# -- IMAP -----------------------------------------------------------------------------------
async def test_imap_pipelined_commands_share_one_write(env: Env) -> None:
    port = await env.listen(handle_imap, "imap")

    def session() -> int:
        c = Client(port)
        c.until(b"\r\n")
        assert b"a OK" in c.ask(f"a LOGIN {USER} {PASSWORD}\r\n".encode(), b"\r\n")
        c.sock.sendall(b"b SELECT INBOX\r\n")
        assert b"* 2 EXISTS" in c.through(b"b OK")
        before = len(env.writes)
        c.sock.sendall(b"c NOOP\r\nd FETCH 1:2 (FLAGS)\r\ne UID FETCH 1 (BODY.PEEK[])\r\n"
                       b"f NOOP\r\n")
        out = c.through(b"f OK")
        writes = len(env.writes) - before
        for tag in (b"c OK", b"d OK", b"e OK"):
            assert tag in out
        # one command, then half of the next: the first is answered without more input
        c.sock.sendall(b"g NOOP\r\nh NO")
        assert c.through(b"g ").startswith(b"g OK")
        c.sock.sendall(b"OP\r\n")
        assert c.through(b"h ").startswith(b"h OK")
        c.close()
        return writes

    assert await in_thread(session) == 1


# -- the connection's queue ------------------------------------------------------------------
async def test_queued_replies_go_out_before_compression_starts_and_before_a_read() -> None:
    """A reply queued before COMPRESS began is sent as it was (uncompressed), ahead of the
    first compressed write; read() sends the queue before it waits for the client."""
    async with connected(10) as (conn, client_reader, client_writer):
        conn.send(b"a OK queued\r\n")
        assert not conn.full
        conn.start_compression()
        await conn.write(b"* compressed\r\n")
        assert await client_reader.readexactly(13) == b"a OK queued\r\n"
        inflate = zlib.decompressobj(-15)
        got = b""
        while got != b"* compressed\r\n":
            got += inflate.decompress(await client_reader.read(100))
        conn.send(b"* answer\r\n")
        read = asyncio.ensure_future(conn.read())
        got = b""
        while got != b"* answer\r\n":  # arrives while the server waits for input
            got += inflate.decompress(await client_reader.read(100))
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        client_writer.write(deflate.compress(b"b NOOP\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
        assert await read == b"b NOOP\r\n"


async def test_pop3_large_retr_goes_out_in_megabyte_writes_uncopied(env: Env) -> None:
    """A message too big to be read ahead is streamed in 1 MiB storage chunks, each one
    transport write of the chunk object itself (no 256 KiB slices, no join with an empty
    queue), and arrives byte-exact."""
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 2 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (2_600_000 // len(line))
    storage = env.storage
    user = await storage.get_user(USER)
    assert user is not None
    mailbox = await storage.get_mailbox(user.id, "INBOX")
    assert mailbox is not None
    info = await storage.store_content(body)
    await storage.append(info, [Delivery(mailbox.id)])
    port = await env.listen(handle_pop3, "pop3")
    originals: list[bytes] = []
    opened = storage.open_content

    async def recorded(sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        async for chunk in opened(sha256, chunk_size=chunk_size):
            originals.append(chunk)
            yield chunk

    storage.open_content = recorded  # type: ignore[method-assign]

    def session() -> tuple[bytes, list[bytes]]:
        c = _pop3_login(port)
        before = len(env.writes)
        out = c.ask(b"RETR 3\r\n", b"\r\n.\r\n")
        written = env.writes[before:]
        c.close()
        return out, written

    out, written = await in_thread(session)
    assert out == b"+OK %d octets\r\n" % len(body) + body + b".\r\n"
    assert [len(c) for c in originals] == [1 << 20, 1 << 20, len(body) - (2 << 20)]
    assert len(written) == 4  # status + chunk, chunk, chunk, terminator
    sent = env.written[-len(written):]
    assert sent[1] is originals[1] and sent[2] is originals[2]  # as storage gave them
