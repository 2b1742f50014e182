"""Hostile and sloppy POP3 input against a real server: every bad line gets one ``-ERR``, the
tenth error closes that session, and other sessions are unaffected."""

from __future__ import annotations

import poplib
import socket
import time
from pathlib import Path

import pytest

from tests.support import MailwingServer

USER = "bob@example.test"
PASSWORD = "s3cret with spaces"


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path,
           database_url: str) -> MailwingServer:
    srv = server_factory(root=tmp_path / "srv", database_url=database_url,
                         enable=("pop3", "pop3s")).start()
    srv.add_user(USER, PASSWORD)
    srv.deliver(USER, b"Subject: hi\r\n\r\nbody\r\n")
    return srv


def raw(srv: MailwingServer) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.ports["pop3"]), timeout=30)
    assert s.recv(1000).startswith(b"+OK mailwing POP3 server ready")
    return s


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def read_lines(s: socket.socket, n: int) -> list[bytes]:
    buf = b""
    while buf.count(b"\r\n") < n:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    return buf.split(b"\r\n")[:n]


def test_each_bad_line_gets_one_error(server: MailwingServer) -> None:
    s = raw(server)
    s.sendall(b"A" * 256 + b"\r\n")  # over the 255-octet limit
    s.sendall(b"NO\x00OP\r\n")
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n")  # TLS hello bytes
    s.sendall("STAT é\r\n".encode())
    s.sendall(b"RETR 1\r\n")  # before login
    s.sendall(b"X" * 100_000 + b"\r\n")
    s.sendall(b"capa\n")  # lower case, bare LF: still fine
    lines = read_lines(s, 7)
    assert lines[0].startswith(b"-ERR command line too long")
    assert lines[1].startswith(b"-ERR command contains NUL")
    assert lines[2].startswith(b"-ERR")
    assert lines[3].startswith(b"-ERR")
    assert lines[4] == b"-ERR RETR not allowed in the AUTHORIZATION state"
    assert lines[5].startswith(b"-ERR command line too long")
    assert lines[6] == b"+OK capability list follows"
    s.close()


def test_ten_errors_close_only_that_session(server: MailwingServer) -> None:
    good = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    good.user(USER)
    good.pass_(PASSWORD)
    s = raw(server)
    s.sendall(b"BOGUS\r\n" * 9 + b"\x00\xff\r\n" + b"NOOP\r\n")
    out = read_until_closed(s)
    replies = out.split(b"\r\n")[:-1]
    assert len(replies) == 10
    assert replies[-1].endswith(b"too many errors, closing connection")
    s.close()
    assert good.stat()[0] == 1
    assert good.quit().startswith(b"+OK")


def test_pipelined_session(server: MailwingServer) -> None:
    s = raw(server)
    s.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nUIDL\r\nLIST 1\r\nNOOP\r\n"
              "DELE 1\r\nRSET\r\nQUIT\r\n".encode())
    out = read_until_closed(s).split(b"\r\n")
    assert out[0] == b"+OK send PASS"
    assert out[1].startswith(b"+OK maildrop has 1 messages")
    assert out[2].startswith(b"+OK 1 ")
    assert out[3].startswith(b"+OK") and out[5] == b"."
    assert out[6].startswith(b"+OK 1 ")
    assert out[7:11] == [b"+OK", b"+OK message 1 deleted",
                         out[9], b"+OK mailwing POP3 server signing off"]
    assert out[9].startswith(b"+OK maildrop has 1 messages")
    s.close()


def test_dropped_mid_retr_does_not_disturb_server(server: MailwingServer) -> None:
    server.deliver(USER, b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 50_000)
    s = raw(server)
    s.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\nDELE 1\r\nRETR 2\r\n".encode())
    time.sleep(0.2)
    s.close()  # mid-stream, without QUIT
    c = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 2
    c.quit()
