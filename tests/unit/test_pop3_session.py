"""The POP3 session in-process: real sockets, a real SQLite storage, stdlib poplib.

The server here is a bare ``asyncio.start_server`` around :func:`handle_pop3` (no CLI, no
listener layer), so the session glue is tested even where ``mailwing serve`` is not at hand.
poplib runs in a worker thread because the server shares the test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import poplib
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from mailwing.config import Settings
from mailwing.server.connection import Connection
from mailwing.server.pop3_session import handle_pop3
from mailwing.services.auth import Authenticator
from mailwing.services.context import AppContext
from mailwing.services.passwords import hash_password
from mailwing.storage import Delivery, Storage, TemporaryStorageError, open_storage

PASSWORD = "pass word ünïcode"


class FlakyStorage:
    """Delegates to a real storage; ``fail`` names methods that raise a temporary error."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.fail: set[str] = set()
        self.crash: set[str] = set()  # methods that raise an unexpected (non-storage) error

    def __getattr__(self, name: str) -> Any:
        if name in self.crash:
            async def crashing(*args: object, **kwargs: object) -> None:
                raise RuntimeError(f"{name} has a bug")
            return crashing
        if name in self.fail:
            async def broken(*args: object, **kwargs: object) -> None:
                raise TemporaryStorageError(f"{name} is down")
            return broken
        return getattr(self._inner, name)


class Env:
    def __init__(self, storage: Storage, tmp: Path) -> None:
        self.real = storage
        self.storage = FlakyStorage(storage)
        self.settings = Settings()
        self.settings.server.hostname = "mail.test"
        self.settings.auth.allow_plaintext = True
        self.settings.auth.failure_delay = 0.0
        self.auth = Authenticator(storage, self.settings.auth)
        self.ctx = AppContext(self.settings, self.storage, self.auth)  # type: ignore[arg-type]
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.server_tls)
        self.client_tls = ssl.create_default_context()
        ca.configure_trust(self.client_tls)
        self.conns: list[Connection] = []
        self.servers: list[asyncio.Server] = []
        self.idle_timeout = 60.0

    async def listen(self, *, implicit_tls: bool = False) -> int:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            conn = Connection(r, w, listener="pop3s" if implicit_tls else "pop3",
                              ssl_context=self.server_tls, idle_timeout=self.idle_timeout)
            self.conns.append(conn)
            try:
                await handle_pop3(self.ctx, conn)
            finally:
                await conn.close()

        server = await asyncio.start_server(
            on_conn, "127.0.0.1", 0, ssl=self.server_tls if implicit_tls else None)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def add_user(self, address: str, password: str = PASSWORD) -> int:
        user, _ = await self.real.add_user(address, hash_password(password),
                                           create_domain=True)
        return user.id

    async def deliver(self, address: str, message: bytes) -> int:
        user = await self.real.get_user(address)
        assert user is not None
        mailbox = await self.real.get_mailbox(user.id, "INBOX")
        assert mailbox is not None
        info = await self.real.store_content(message)
        (entry,) = await self.real.append(info, [Delivery(mailbox.id)])
        return entry.uid

    async def inbox_uids(self, address: str) -> list[int]:
        user = await self.real.get_user(address)
        assert user is not None
        mailbox = await self.real.get_mailbox(user.id, "INBOX")
        assert mailbox is not None
        return [e.uid for e in await self.real.list_mail(mailbox.id)]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    storage = await open_storage(f"sqlite:///{tmp_path / 'm.db'}", data_dir=tmp_path)
    await storage.upgrade()
    e = Env(storage, tmp_path)
    yield e
    for s in e.servers:
        s.close()
    await storage.close()


def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return asyncio.to_thread(fn, *args)


def login(port: int, user: str = "u@x.test", password: str = PASSWORD) -> poplib.POP3:
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    c.user(user)
    c.pass_(password)
    return c


MESSAGES = [
    b"Subject: one\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n",
    "Subject: two\n\nbare LF body, 8-bit: grüße, 日本\n.dot\n".encode(),
    b"Subject: three\r\n\r\nno final newline",
]


async def test_retr_list_uidl_top(env: Env) -> None:
    await env.add_user("u@x.test")
    for m in MESSAGES:
        await env.deliver("u@x.test", m)
    port = await env.listen()

    def client() -> None:
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        assert c.getwelcome() == b"+OK mailwing POP3 server ready <mail.test>"
        c.user("U@X.test")
        assert c.pass_(PASSWORD).startswith(b"+OK maildrop has 3 messages")
        count, size = c.stat()
        _, listing, _ = c.list()
        sizes = [int(line.split()[1]) for line in listing]
        assert count == 3 and size == sum(sizes)
        for i, m in enumerate(MESSAGES, 1):
            _, lines, _octets = c.retr(i)
            expected = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            got = b"\r\n".join(lines)
            assert got == expected.removesuffix(b"\r\n")
            assert sizes[i - 1] == len(expected)
        _, lines, _ = c.top(1, 1)
        assert lines == [b"Subject: one", b"", b".starts with a dot"]
        _, uidl, _ = c.uidl()
        assert len({u.split()[1] for u in uidl}) == 3
        c.quit()

    await in_thread(client)


async def test_large_message_byte_exact(env: Env) -> None:
    await env.add_user("u@x.test")
    body = b"".join(b".%07d line of text with some padding........\r\n" % i for i in range(220000))
    msg = b"Subject: big\r\n\r\n" + body
    assert len(msg) > 10_000_000
    await env.deliver("u@x.test", msg)
    port = await env.listen()

    def client() -> None:
        c = login(port)
        assert c.list(1).split()[2] == str(len(msg)).encode()
        _, lines, _ = c.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == msg
        c.quit()

    await in_thread(client)


async def test_dele_quit_removes_and_drop_keeps(env: Env) -> None:
    await env.add_user("u@x.test")
    uids = [await env.deliver("u@x.test", m) for m in MESSAGES]
    port = await env.listen()

    def dropper() -> None:
        c = login(port)
        c.dele(1)
        c.dele(2)
        c.sock.close()  # no QUIT

    await in_thread(dropper)
    await asyncio.sleep(0.1)
    assert await env.inbox_uids("u@x.test") == uids

    def quitter() -> None:
        c = login(port)
        c.dele(2)
        assert c.quit().startswith(b"+OK")

    await in_thread(quitter)
    assert await env.inbox_uids("u@x.test") == [uids[0], uids[2]]


async def test_two_sessions_and_stable_uidl(env: Env) -> None:
    await env.add_user("u@x.test")
    for m in MESSAGES:
        await env.deliver("u@x.test", m)
    port = await env.listen()

    def client() -> None:
        a, b = login(port), login(port)
        uidl_a = a.uidl()[1]
        assert b.uidl()[1] == uidl_a
        a.dele(1)
        a.quit()
        # b keeps its snapshot: numbering and sizes unchanged; the removed content is gone
        assert b.stat()[0] == 3
        with pytest.raises(poplib.error_proto, match="removed by another session"):
            b.retr(1)
        b.dele(1)
        b.dele(3)
        assert b.quit().startswith(b"+OK")
        c = login(port)
        assert c.uidl()[1] == [b"1 " + uidl_a[1].split()[1]]
        c.quit()

    await in_thread(client)


async def test_auth_plain_raw(env: Env) -> None:
    await env.add_user("u@x.test")
    port = await env.listen()
    token = base64.b64encode(f"\0u@x.test\0{PASSWORD}".encode()).decode()

    def client() -> None:
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        assert c._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK")  # type: ignore[attr-defined]
        c.quit()
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        c._putcmd("AUTH PLAIN")  # type: ignore[attr-defined]
        assert c._getline()[0] == b"+ "  # type: ignore[attr-defined]
        assert c._shortcmd(token).startswith(b"+OK")  # type: ignore[attr-defined]
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            c2 = poplib.POP3("127.0.0.1", port, timeout=10)
            c2._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0u@x.test\0wrong").decode())  # type: ignore[attr-defined]
        c.quit()

    await in_thread(client)


async def test_stls_and_implicit_tls(env: Env) -> None:
    await env.add_user("u@x.test")
    await env.deliver("u@x.test", MESSAGES[0])
    env.settings.auth.allow_plaintext = False
    port = await env.listen()
    tls_port = await env.listen(implicit_tls=True)

    def client() -> None:
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        caps = c.capa()
        assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
        with pytest.raises(poplib.error_proto, match="STLS"):
            c.user("u@x.test")
        c.stls(context=env.client_tls)
        caps = c.capa()
        assert "STLS" not in caps and "USER" in caps and caps["SASL"] == ["PLAIN"]
        with pytest.raises(poplib.error_proto, match="already active"):
            c._shortcmd("STLS")  # type: ignore[attr-defined]
        c.user("u@x.test")
        c.pass_(PASSWORD)
        assert c.stat()[0] == 1
        c.quit()
        s = poplib.POP3_SSL("127.0.0.1", tls_port, context=env.client_tls, timeout=10)
        assert "STLS" not in s.capa()
        s.user("u@x.test")
        s.pass_(PASSWORD)
        assert s.stat()[0] == 1
        s.quit()

    await in_thread(client)


def raw_session(port: int, data: bytes, read_until_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.recv(1000)
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
            if not read_until_close and out.endswith(b"\r\n"):
                break
        return out


async def test_bad_input_and_error_limit(env: Env) -> None:
    await env.add_user("u@x.test")
    port = await env.listen()

    def client() -> None:
        good = login(port)
        junk = (b"A" * 300 + b"\r\n" + b"NO\x00OP\r\n" + b"\xff\xfe\x80garbage\r\n"
                + b"BOGUS\r\n" * 10)
        out = raw_session(port, junk)
        replies = out.split(b"\r\n")[:-1]
        assert len(replies) == 10
        assert replies[0].startswith(b"-ERR command line too long")
        assert replies[1].startswith(b"-ERR command contains NUL")
        assert replies[-1].endswith(b"too many errors, closing connection")
        assert good.noop().startswith(b"+OK")
        good.quit()

    await in_thread(client)


async def test_pipelining(env: Env) -> None:
    await env.add_user("u@x.test")
    await env.deliver("u@x.test", b"Subject: p\r\n\r\nbody\r\n")
    port = await env.listen()
    cmds = f"USER u@x.test\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n"
    out = await in_thread(raw_session, port, cmds.encode())
    assert out == (
        b"+OK send PASS\r\n+OK maildrop has 1 messages (20 octets)\r\n+OK 1 20\r\n"
        b"+OK 20 octets\r\nSubject: p\r\n\r\nbody\r\n.\r\n+OK message 1 deleted\r\n"
        b"+OK mailwing POP3 server signing off (1 messages deleted)\r\n"
    )


async def test_idle_timeout(env: Env) -> None:
    env.idle_timeout = 0.3
    port = await env.listen()
    out = await in_thread(raw_session, port, b"CAPA\r\n")
    assert out.endswith(b"-ERR [SYS/TEMP] idle timeout, closing connection\r\n")


async def test_shutdown_expunges_nothing(env: Env) -> None:
    await env.add_user("u@x.test")
    uid = await env.deliver("u@x.test", b"Subject: s\r\n\r\nx\r\n")
    port = await env.listen()
    c = await in_thread(login, port)
    await in_thread(c.dele, 1)
    for conn in env.conns:
        conn.begin_shutdown()
    line = await in_thread(c.file.readline)
    assert line == b"-ERR [SYS/TEMP] server shutting down, try again later\r\n"
    assert await env.inbox_uids("u@x.test") == [uid]


async def test_expunge_failure_removes_nothing(env: Env) -> None:
    await env.add_user("u@x.test")
    uid = await env.deliver("u@x.test", b"Subject: s\r\n\r\nx\r\n")
    port = await env.listen()
    env.storage.fail.add("expunge")

    def client() -> None:
        c = login(port)
        c.dele(1)
        with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
            c.quit()

    await in_thread(client)
    assert await env.inbox_uids("u@x.test") == [uid]


async def test_storage_down_at_login(env: Env) -> None:
    await env.add_user("u@x.test")
    port = await env.listen()

    def client(expect: str) -> None:
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        c.user("u@x.test")
        with pytest.raises(poplib.error_proto, match=expect):
            c.pass_(PASSWORD)
        c.quit()

    env.storage.fail.add("list_mail")
    await in_thread(client, r"\[SYS/TEMP\] maildrop")
    env.auth.storage = env.storage  # type: ignore[assignment]
    env.storage.fail.add("get_user")
    await in_thread(client, r"\[SYS/TEMP\] authentication")


async def test_unexpected_error_gets_internal_reply(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """A bug below the session is logged with the session's fields and answered with the
    internal-error line (found by mypy: the handler called a method that did not exist, so the
    client saw the connection drop instead)."""
    await env.add_user("u@x.test")
    port = await env.listen()
    env.storage.crash.add("list_mail")

    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(f"USER u@x.test\r\nPASS {PASSWORD}\r\n".encode())
            f.readline()
            return f.readline()

    with caplog.at_level("ERROR", logger="mailwing"):
        line = await in_thread(client)
    assert line == b"-ERR [SYS/TEMP] internal server error, closing connection\r\n"
    failed = [r for r in caplog.records if r.getMessage() == "POP3 session failed"]
    assert failed and failed[0].exc_info is not None
    assert getattr(failed[0], "listener", None) == "pop3"


async def test_disabled_and_wrong_password(env: Env) -> None:
    await env.add_user("u@x.test")
    await env.real.set_enabled("u@x.test", False)
    port = await env.listen()

    def client() -> None:
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        c.user("u@x.test")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] authentication failed"):
            c.pass_("wrong")
        c.user("u@x.test")
        with pytest.raises(poplib.error_proto, match=r"\[SYS/PERM\]"):
            c.pass_(PASSWORD)
        c.quit()

    await in_thread(client)




async def test_top_stops_reading_storage_early(env: Env) -> None:
    await env.add_user("u@x.test")
    await env.deliver("u@x.test", b"Subject: big\r\n\r\n" + b"y" * 78 + b"\r\n" * 600_000)
    port = await env.listen()
    served: list[int] = []
    real_open = env.real.open_content

    def counting_open(sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            async for chunk in real_open(sha256, chunk_size=chunk_size):
                served.append(len(chunk))
                yield chunk
        return gen()

    env.storage.open_content = counting_open  # type: ignore[attr-defined]

    def client() -> None:
        c = login(port)
        _, lines, _ = c.top(1, 2)
        assert lines == [b"Subject: big", b"", b"y" * 78, b""]
        c.quit()

    await in_thread(client)
    assert len(served) == 1


async def test_retr_reads_small_messages_ahead_in_one_call(env: Env) -> None:
    """Clients RETR the maildrop in order: the small messages are read with one
    read_contents call (one query on PostgreSQL) instead of one read each; a failing
    read-ahead falls back to streaming each message."""
    await env.add_user("u@x.test")
    bodies = [b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i) for i in range(5)]
    for body in bodies:
        await env.deliver("u@x.test", body)
    port = await env.listen()
    calls: list[str] = []
    real_many, real_open = env.real.read_contents, env.real.open_content

    async def counting_many(contents: Any) -> dict[str, bytes]:
        calls.append("read_contents")
        return await real_many(contents)

    def counting_open(sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        calls.append("open_content")
        return real_open(sha256, chunk_size=chunk_size)

    env.storage.read_contents = counting_many  # type: ignore[attr-defined]
    env.storage.open_content = counting_open  # type: ignore[attr-defined]

    def client() -> list[bytes]:
        c = login(port)
        got = [b"\r\n".join(c.retr(n)[1]) + b"\r\n" for n in range(1, 6)]
        c.quit()
        return got

    assert await in_thread(client) == bodies
    assert calls == ["read_contents"]
    calls.clear()
    del env.storage.read_contents  # type: ignore[attr-defined]
    env.storage.fail.add("read_contents")
    assert await in_thread(client) == bodies
    assert calls == ["open_content"] * 5


async def test_maildrop_snapshot_is_revalidated_at_every_login(env: Env) -> None:
    """The process keeps the last maildrop of a mailbox, but a login uses it only while the
    mailbox row it reads still has the same HIGHESTMODSEQ: changes made through storage
    behind the session layer's back (another process would do the same) are seen."""
    await env.add_user("u@x.test")
    uids = [await env.deliver("u@x.test", m) for m in MESSAGES]
    port = await env.listen()
    reads: list[int] = []
    inner_list_mail = env.real.list_mail

    async def counted(mailbox_id: int) -> Any:
        reads.append(mailbox_id)
        return await inner_list_mail(mailbox_id)

    env.storage.list_mail = counted  # type: ignore[attr-defined]

    def uidls() -> list[bytes]:
        c = login(port)
        _, lines, _ = c.uidl()
        c.quit()
        return [line.split()[1] for line in lines]

    first = await in_thread(uidls)
    assert len(first) == 3
    assert await in_thread(uidls) == first
    assert len(reads) == 1  # unchanged: the snapshot was reused
    await env.deliver("u@x.test", b"Subject: four\r\n\r\nfour\r\n")
    fourth = await in_thread(uidls)
    assert fourth[:3] == first and len(fourth) == 4
    assert len(reads) == 2
    user = await env.real.get_user("u@x.test")
    assert user is not None
    box = await env.real.get_mailbox(user.id, "INBOX")
    assert box is not None
    await env.real.expunge(box.id, [uids[1]])
    assert await in_thread(uidls) == [first[0], first[2], fourth[3]]


async def test_login_reads_the_inbox_while_the_password_is_checked(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the second login of a name on, the INBOX row is read alongside the user lookup
    (one storage wait, not two in a row), and the by-name lookup is skipped."""
    await env.add_user("u@x.test")
    await env.deliver("u@x.test", MESSAGES[0])
    port = await env.listen()
    started = asyncio.Event()
    overlapped: list[bool] = []
    by_name: list[str] = []
    get_user, by_id, get_mailbox = (env.real.get_user, env.real.get_mailbox_by_id,
                                    env.real.get_mailbox)

    async def slow_get_user(address: str) -> Any:  # the authenticator's lookup
        try:
            await asyncio.wait_for(started.wait(), 0.5)
            overlapped.append(True)
        except TimeoutError:
            overlapped.append(False)
        started.clear()
        return await get_user(address)

    async def get_by_id(mailbox_id: int) -> Any:
        started.set()
        return await by_id(mailbox_id)

    async def get_by_name(user_id: int, name: str) -> Any:
        by_name.append(name)
        return await get_mailbox(user_id, name)

    monkeypatch.setattr(env.real, "get_user", slow_get_user)
    env.storage.get_mailbox_by_id = get_by_id  # type: ignore[attr-defined]
    env.storage.get_mailbox = get_by_name  # type: ignore[attr-defined]

    def stat() -> tuple[int, int]:
        c = login(port)
        out = c.stat()
        c.quit()
        return out

    first = await in_thread(stat)
    assert overlapped == [False] and by_name == ["INBOX"]  # nothing to guess from yet
    assert await in_thread(stat) == first == (1, len(MESSAGES[0]))
    assert overlapped == [False, True] and by_name == ["INBOX"]


async def test_a_wrong_inbox_guess_is_not_used(env: Env) -> None:
    """The guessed row is checked: another user's mailbox (a stale or reused id) is never
    taken for this user's INBOX, and a guessed read that fails falls back to the name."""
    from mailwing.server.pop3_session import _maildrops

    await env.add_user("u@x.test")
    await env.add_user("other@x.test")
    await env.deliver("u@x.test", MESSAGES[0])
    for m in MESSAGES:
        await env.deliver("other@x.test", m)
    other = await env.real.get_user("other@x.test")
    assert other is not None
    other_inbox = await env.real.get_mailbox(other.id, "INBOX")
    assert other_inbox is not None
    _maildrops.remember_inbox(env.storage, "u@x.test", other_inbox.id)  # type: ignore[arg-type]
    port = await env.listen()

    def stat(password: str = PASSWORD) -> tuple[int, int] | str:
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        c.user("u@x.test")
        try:
            c.pass_(password)
        except poplib.error_proto as exc:
            return str(exc)
        out = c.stat()
        c.quit()
        return out

    assert await in_thread(stat) == (1, len(MESSAGES[0]))
    assert "-ERR" in str(await in_thread(stat, "wrong"))
    env.storage.fail.add("get_mailbox_by_id")  # a failed guess: read by name instead
    assert await in_thread(stat) == (1, len(MESSAGES[0]))
