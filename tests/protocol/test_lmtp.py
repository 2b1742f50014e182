"""LMTP (RFC 2033) against a real ``mailwing serve``: its UNIX socket with two workers, the
optional loopback TCP port, ``mailwing deliver`` through the socket and without it, swaks as
an outside client, and a 250 that survives kill -9.

Every stored message is read back through the storage API and compared byte for byte below
the trace fields (``Return-Path``, ``Delivered-To``: the same two the direct path writes).
Storage is touched, so each test runs on both backends (``database_url``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwing.unixpath import socket_address
from tests.support import MailwingServer, _accepts, free_port, require_binary

ANN = "ann@example.org"
BEN = "ben@example.org"  # a small quota
MSG = b"From: s@remote.test\r\nSubject: lmtp\r\n\r\nhello over LMTP\r\n"


class Lmtp:
    """A raw LMTP client on a socket: send lines, read whole replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        sock.settimeout(20)

    @classmethod
    def unix(cls, path: Path) -> Lmtp:
        sock = socket.socket(socket.AF_UNIX)
        with socket_address(path) as where:
            sock.connect(where)
        return cls(sock)

    def reply(self) -> str:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                assert data, "connection closed"
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if line[3:4] != b"-":
                return "\n".join(lines)

    def codes(self, count: int) -> list[str]:
        """The next ``count`` replies as "code enhanced" ("250 2.1.5"), or just the code."""
        out = []
        for _ in range(count):
            words = self.reply().split("\n")[-1].split(" ")
            enhanced = len(words) > 1 and words[1][:1].isdigit() and "." in words[1]
            out.append(" ".join(words[:2]) if enhanced else words[0])
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


async def _stored(server: MailwingServer, url: str, address: str,
                  mailbox: str = "INBOX") -> list[bytes]:
    from mailwing.storage import open_storage

    store = await open_storage(url, data_dir=server.data_dir)
    try:
        user = await store.get_user(address)
        box = await store.get_mailbox(user.id, mailbox)
        return [await store.read_content(e.content.sha256) for e in await store.list_mail(box.id)]
    finally:
        await store.close()


def stored(server: MailwingServer, url: str, address: str, mailbox: str = "INBOX"
           ) -> list[bytes]:
    return asyncio.run(_stored(server, url, address, mailbox))


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path, database_url: str
           ) -> Iterator[MailwingServer]:
    srv = server_factory(root=tmp_path / "srv", database_url=database_url, enable=("lmtp",),
                         extra_config="[server]\nworkers = 2\n")
    srv.cli("db", "upgrade")
    srv.add_user(ANN, "pw ann")
    srv.cli("user", "add", BEN, "--quota", "600", "--password-stdin", input=b"pw ben\n")
    srv.start()
    yield srv


def test_socket_mode_and_multi_recipient_results(server: MailwingServer,
                                                 database_url: str) -> None:
    """RFC 2033 4.2: after the dot one reply per accepted recipient, in RCPT order; only the
    recipients whose copy was committed get 250, and only their mailboxes hold it."""
    assert stat.S_IMODE(os.stat(server.lmtp_socket).st_mode) == 0o660
    big = MSG + b"x" * 700 + b"\r\n"  # over BEN's 600 octets, under nobody else's
    lmtp = Lmtp.unix(server.lmtp_socket)
    try:
        assert lmtp.reply().startswith("220 mail.test LMTP")
        lmtp.send(b"LHLO mta.test\r\n")
        assert "XMAILBOX" in lmtp.reply()
        lmtp.send(b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<ANN@example.org>\r\n"
                  b"RCPT TO:<ghost@example.org>\r\nRCPT TO:<carol@remote.test>\r\n"
                  b"RCPT TO:<ben@example.org>\r\nRCPT TO:<ann@example.org> XMAILBOX=Trash\r\n"
                  b"RCPT TO:<ann@example.org> XMAILBOX=Nope\r\nDATA\r\n")
        assert lmtp.codes(8) == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "550 5.1.1",
                                 "250 2.1.5", "250 2.1.5", "550 5.2.0", "354"]
        lmtp.send(big + b".\r\n")
        assert lmtp.codes(3) == ["250 2.0.0", "552 5.2.2", "250 2.0.0"]
        # a second transaction on the same connection, BDAT this time
        lmtp.send(b"MAIL FROM:<> BODY=BINARYMIME\r\nRCPT TO:<ann@example.org>\r\n"
                  b"BDAT %d LAST\r\n" % len(MSG) + MSG)
        assert lmtp.codes(3) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
        lmtp.send(b"QUIT\r\n")
        assert lmtp.codes(1) == ["221 2.0.0"]
    finally:
        lmtp.close()
    inbox = stored(server, database_url, ANN)
    assert [m.split(b"\r\n", 2)[2] for m in inbox] == [big, MSG]
    assert inbox[0].startswith(b"Return-Path: <s@remote.test>\r\nDelivered-To: ann@example.org")
    assert inbox[1].startswith(b"Return-Path: <>\r\n")
    assert [m.split(b"\r\n", 2)[2] for m in stored(server, database_url, ANN, "Trash")] == [big]
    assert stored(server, database_url, BEN) == []


def _deliver(server: MailwingServer, *args: str, message: bytes = MSG) -> tuple[int, str]:
    done = server.cli("deliver", *args, input=message, check=False)
    return done.returncode, done.stderr.decode()


def test_mailwing_deliver_goes_through_the_socket(server: MailwingServer,
                                                  database_url: str) -> None:
    """Exit codes as on the direct path; --from and --mailbox kept; the server delivered."""
    assert _deliver(server, "--to", ANN, "--from", "alice")[0] == 0
    assert _deliver(server, "--to", ANN, "--mailbox", "Trash", "--from", "<>")[0] == 0
    assert _deliver(server, "--to", "nobody@example.org")[0] == 67
    assert _deliver(server, "--to", ANN, "--mailbox", "Nope")[0] == 73
    assert _deliver(server, "--to", BEN, message=MSG + b"y" * 700)[0] == 77
    assert _deliver(server, "--to", ANN, message=b"")[0] == 65
    code, err = _deliver(server, "--to", ANN, message=b"raw\nLF and a NUL \x00 kept\n")
    assert code == 0 and "over LMTP" in err
    inbox = stored(server, database_url, ANN)
    assert inbox[0] == (b"Return-Path: <alice@mail.test>\r\nDelivered-To: ann@example.org\r\n"
                        + MSG)
    assert inbox[1] == (b"Return-Path: <>\r\nDelivered-To: ann@example.org\r\n"
                        b"raw\nLF and a NUL \x00 kept\n")
    (trash,) = stored(server, database_url, ANN, "Trash")
    assert trash == b"Return-Path: <>\r\nDelivered-To: ann@example.org\r\n" + MSG
    log = server.log_text()
    assert log.count("listener=lmtp") >= 7 and "result=delivered" in log


def test_deliver_falls_back_to_the_direct_path(server: MailwingServer, database_url: str,
                                               tmp_path: Path) -> None:
    """Without a server (socket removed at stop) or with a socket file nobody accepts on
    (left by a kill), ``mailwing deliver`` delivers directly, with the same results."""
    server.stop()
    assert not server.lmtp_socket.exists()
    code, err = _deliver(server, "--to", ANN, "--from", "alice")
    assert code == 0 and "over LMTP" not in err
    assert _deliver(server, "--to", "nobody@example.org")[0] == 67
    stale = socket.socket(socket.AF_UNIX)
    with socket_address(server.lmtp_socket) as where:
        stale.bind(where)  # bound, never listening: connections are refused
    try:
        code, err = _deliver(server, "--to", ANN, "--mailbox", "Trash")
        assert code == 0 and "over LMTP" not in err
    finally:
        stale.close()
    assert stored(server, database_url, ANN) == [
        b"Return-Path: <alice@mail.test>\r\nDelivered-To: ann@example.org\r\n" + MSG]
    assert len(stored(server, database_url, ANN, "Trash")) == 1
    server.start()  # a stale socket file is replaced at start
    assert "over LMTP" in _deliver(server, "--to", ANN)[1]


def test_a_message_over_the_listeners_size_is_delivered_directly(
        server_factory: type[MailwingServer], tmp_path: Path, database_url: str) -> None:
    """The listener bounds a message at ``limits.max_message_size``; the direct path does
    not. The client reads up to the advertised SIZE before sending any of the message, so
    a bigger one is delivered directly, intact, instead of bouncing because a server runs."""
    srv = server_factory(root=tmp_path / "srv", database_url=database_url, enable=("lmtp",),
                         extra_config="[limits]\nmax_message_size = 2000\n")
    srv.cli("db", "upgrade")
    srv.add_user(ANN, "pw ann")
    srv.start()
    big = MSG + b"z" * 700_000 + b"\r\n"  # several client chunks past the limit
    code, err = _deliver(srv, "--to", ANN, message=big)
    assert code == 0 and "over LMTP" not in err
    code, err = _deliver(srv, "--to", ANN)
    assert code == 0 and "over LMTP" in err
    trace = b"Return-Path: <>\r\nDelivered-To: ann@example.org\r\n"
    assert stored(srv, database_url, ANN) == [trace + big, trace + MSG]


def test_acknowledged_deliveries_survive_kill_9(server_factory: type[MailwingServer],
                                                tmp_path: Path, database_url: str) -> None:
    """A 250 after the dot means committed: SIGKILL right after the last one loses none.
    One worker, so that the SIGKILL hits the process that answered (a killed parent of
    several only makes its workers drain)."""
    server = server_factory(root=tmp_path / "kill", database_url=database_url,
                            enable=("lmtp",))
    server.cli("db", "upgrade")
    server.add_user(ANN, "pw ann")
    server.start()
    lmtp = Lmtp.unix(server.lmtp_socket)
    lmtp.reply()
    lmtp.send(b"LHLO mta.test\r\n")
    lmtp.reply()
    for n in range(12):
        body = MSG + f"number {n}\r\n".encode() + (b"z" * 300_000 if n % 4 == 0 else b"")
        lmtp.send(b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<ann@example.org>\r\n"
                  b"BDAT %d LAST\r\n" % len(body) + body)
        assert lmtp.codes(3) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
    server.stop(signal.SIGKILL)
    lmtp.close()
    inbox = stored(server, database_url, ANN)
    assert sorted(int(m.split(b"number ")[1].split(b"\r\n")[0]) for m in inbox) == list(
        range(12))


def test_tcp_listener_on_loopback(server_factory: type[MailwingServer], tmp_path: Path,
                                  database_url: str) -> None:
    port = free_port()
    srv = server_factory(root=tmp_path / "tcp", database_url=database_url, enable=(),
                         extra_config=f'[lmtp]\nport = {port}\nsocket = ""\n')
    srv.cli("db", "upgrade")
    srv.add_user(ANN, "pw")
    srv.start()
    deadline = time.monotonic() + 30
    while not _accepts(port):
        assert time.monotonic() < deadline, srv.log_text()
        time.sleep(0.05)
    assert not srv.lmtp_socket.exists()
    lmtp = Lmtp(socket.create_connection(("127.0.0.1", port), timeout=20))
    try:
        assert lmtp.reply().startswith("220 ")
        lmtp.send(b"LHLO mta.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<ann@example.org>\r\n"
                  b"RCPT TO:<x@remote.test>\r\nDATA\r\n")
        assert lmtp.codes(5)[1:] == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "354"]
        lmtp.send(MSG + b".\r\n")
        assert lmtp.codes(1) == ["250 2.0.0"]
    finally:
        lmtp.close()
    assert len(stored(srv, database_url, ANN)) == 1
    # no socket: deliver goes directly
    assert "over LMTP" not in _deliver(srv, "--to", ANN)[1]


def test_swaks_delivers_over_the_socket(server: MailwingServer, database_url: str) -> None:
    """An outside LMTP client: swaks --protocol LMTP --socket (two recipients, one unknown)."""
    swaks = require_binary("swaks")
    done = subprocess.run(
        [swaks, "--protocol", "LMTP", "--socket", str(server.lmtp_socket),
         "--from", "s@remote.test", "--to", f"{ANN},ghost@example.org",
         "--header", "Subject: swaks over lmtp", "--body", "hello from swaks"],
        capture_output=True, timeout=60, check=False)
    out = done.stdout.decode(errors="replace")
    assert "LHLO" in out and "550 5.1.1" in out, out
    (got,) = stored(server, database_url, ANN)
    assert b"Subject: swaks over lmtp" in got and b"hello from swaks" in got
    assert got.startswith(b"Return-Path: <s@remote.test>\r\nDelivered-To: ann@example.org")
