"""SMTP smuggling over a real socket: fake end-of-data sequences inside one message never
end it nor start a second transaction (named regression test, see also the unit variant).

Each variant is sent as one raw write (so it arrives pipelined, as an attacker would send
it); the server must answer exactly one reply for the body, store nothing from the refused
message (bare CR/LF), and never deliver the smuggled second message. A clean message sent
afterwards on the same connection is stored once, with the dot lines intact.
"""

from __future__ import annotations

import poplib
import socket
from pathlib import Path

import pytest

from tests.support import MailwingServer

ALICE = "alice@example.test"
PASSWORD = "correct horse battery staple"

VARIANTS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"]


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path) -> MailwingServer:
    srv = server_factory(root=tmp_path / "srv", database_url=f"sqlite:///{tmp_path / 'm.db'}",
                         enable=("smtp", "pop3")).start()
    srv.add_user(ALICE, PASSWORD)
    return srv


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def reply(self) -> bytes:
        """One complete (possibly multi-line) reply."""
        while True:
            lines = self.buf.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" ":
                    out = b"\r\n".join(lines[: i + 1]) + b"\r\n"
                    self.buf = self.buf[len(out):]
                    return out
            data = self.sock.recv(65536)
            assert data, "server closed the connection"
            self.buf += data

    def cmd(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.reply()


def messages(srv: MailwingServer) -> list[bytes]:
    p = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=30)
    p.user(ALICE)
    p.pass_(PASSWORD)
    out = [b"\r\n".join(p.retr(i)[1]) for i in range(1, p.stat()[0] + 1)]
    p.quit()
    return out


@pytest.mark.parametrize("fake_end", VARIANTS, ids=[v.hex() for v in VARIANTS])
def test_smuggled_second_transaction_is_never_accepted(server: MailwingServer,
                                                       fake_end: bytes) -> None:
    c = Raw(server.ports["smtp"])
    assert c.reply().startswith(b"220 ")
    assert c.cmd(b"EHLO attacker.test\r\n").startswith(b"250-")
    smuggled = (b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
                b"From: ceo@example.test\r\nSubject: smuggled\r\n\r\npay now\r\n")
    c.sock.sendall(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
                   b"Subject: first\r\n\r\nhello" + fake_end + smuggled + b"\r\n.\r\n")
    assert c.reply().startswith(b"250 2.1.0")
    assert c.reply().startswith(b"250 2.1.5")
    assert c.reply().startswith(b"354 ")
    assert c.reply().startswith(b"550 5.6.0")  # the one message, refused as a whole
    assert c.cmd(b"NOOP\r\n").startswith(b"250 ")  # and no stray replies in between
    assert messages(server) == []
    c.sock.close()


def test_dot_lines_round_trip_and_only_crlf_dot_crlf_ends(server: MailwingServer) -> None:
    c = Raw(server.ports["smtp"])
    c.reply()
    c.cmd(b"EHLO client.test\r\n")
    body = b"Subject: dots\r\n\r\n..\r\n...x\r\n. \r\nMAIL FROM:<x@y.test>\r\n"
    c.sock.sendall(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
                   + body + b".\r\nQUIT\r\n")
    replies = [c.reply() for _ in range(5)]
    assert [r[:3] for r in replies] == [b"250", b"250", b"354", b"250", b"221"]
    (stored,) = messages(server)
    assert stored.endswith(b"Subject: dots\r\n\r\n.\r\n..x\r\n \r\nMAIL FROM:<x@y.test>")
