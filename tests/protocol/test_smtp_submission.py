"""Submission when plaintext passwords are refused (``[auth] allow_plaintext = false``):
STARTTLS (RFC 3207) before AUTH (``538 5.7.11``), certificate verification against the
server's generated certificate, and the connection-level limits seen from a real client."""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from pathlib import Path

import pytest

from tests.support import MailwingServer

ALICE = "alice@example.test"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path) -> MailwingServer:
    srv = server_factory(root=tmp_path / "srv", database_url=f"sqlite:///{tmp_path / 'm.db'}",
                         enable=("smtp", "submission", "smtps"),
                         extra_config="[auth]\nallow_plaintext = false\n"
                                      "[limits]\nmax_errors = 3\n").start()
    srv.add_user(ALICE, PASSWORD)
    return srv


def verified_context(srv: MailwingServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.cert_path))
    ctx.check_hostname = False  # the certificate names the configured hostname, not 127.0.0.1
    return ctx


def test_auth_needs_starttls_first(server: MailwingServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as s:
        code, caps = s.ehlo("client.test")
        assert b"STARTTLS" in caps and b"AUTH" not in caps
        token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
        code, text = s.docmd("AUTH", f"PLAIN {token}")
        assert (code, text[:6]) == (538, b"5.7.11")
        assert s.mail(ALICE)[0] == 530
        s.starttls(context=verified_context(server))
        code, caps = s.ehlo("client.test")
        assert b"AUTH PLAIN LOGIN" in caps and b"STARTTLS" not in caps
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, [ALICE], b"From: alice@example.test\r\n\r\nok\r\n") == {}


def test_mx_listener_delivers_without_auth_even_when_plaintext_is_refused(
        server: MailwingServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as s:
        assert s.sendmail("x@remote.test", [ALICE], b"Subject: mx\r\n\r\nhi\r\n") == {}


def test_garbage_commands_end_in_421(server: MailwingServer) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=30) as sock:
        sock.sendall(b"\x00\xff\x01garbage\r\nGET / HTTP/1.1\r\n" + b"z" * 5000 + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        lines = data.split(b"\r\n")
        assert lines[0].startswith(b"220 ")
        assert lines[1].startswith(b"500 5.5.2") and lines[2].startswith(b"500 5.5.2")
        assert lines[3].startswith(b"421 4.7.0")


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_idle_timeout_and_shutdown_say_421(server_factory: type[MailwingServer],
                                           tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path / "srv", database_url=f"sqlite:///{tmp_path / 'm.db'}",
                         enable=("smtp",), env={"MAILWING_SMTP_IDLE_TIMEOUT": "1"}).start()
    with socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=30) as sock:
        data = read_all(sock)
        assert data.startswith(b"220 ") and b"\r\n421 4.4.2 " in data
    sock = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=30)
    assert sock.recv(1000).startswith(b"220 ")
    srv.stop()
    assert read_all(sock).startswith(b"421 4.3.2 ")
    sock.close()
