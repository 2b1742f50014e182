"""Shared helpers for the IMAP protocol tests (no tests here): a started server with one
user, logged-in imaplib/imapclient connections, sample messages."""

from __future__ import annotations

import imaplib
import socket
import ssl
from pathlib import Path

from tests.support import MailwingServer

USER = "alice@example.test"
PASSWORD = "correct horse battery staple"
OTHER = "bob@example.test"

MULTIPART = (
    b'From: "Alice Example" <alice@example.test>\r\n'
    b'To: bob@example.test, "Carol" <carol@example.test>\r\n'
    b"Subject: multipart test\r\n"
    b"Date: Fri, 02 Jan 2026 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello plain\r\n"
    b"--XYZ\r\n"
    b'Content-Type: application/octet-stream; name="a.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="a.bin"\r\n'
    b"\r\n"
    b"AAECAw==\r\n"
    b"--XYZ--\r\n"
)


def simple(subject: str, body: str = "hello world", sender: str = "bob@example.test") -> bytes:
    return (f"From: {sender}\r\nTo: {USER}\r\nSubject: {subject}\r\n"
            f"Date: Thu, 01 Jan 2026 12:00:00 +0000\r\n\r\n{body}\r\n").encode()


def start(server_factory: type[MailwingServer], tmp_path: Path, database_url: str = "",
          extra_config: str = "", enable: tuple[str, ...] = ("imap", "imaps")
          ) -> MailwingServer:
    srv = server_factory(root=tmp_path / "srv", database_url=database_url, enable=enable,
                         extra_config=extra_config).start()
    srv.add_user(USER, PASSWORD)
    return srv


def connect(srv: MailwingServer, *, login: bool = True) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=30)
    if login:
        c.login(USER, PASSWORD)
    return c


def tls_context(srv: MailwingServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.cert_path))
    ctx.check_hostname = False  # the certificate names the configured hostname (mail.test)
    return ctx


def ok(result: tuple[str, list]) -> list:  # type: ignore[type-arg]
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


class Raw:
    """A bare socket client: send lines, read until a tagged completion (for what imaplib
    refuses to send: wrong-state commands, garbage)."""

    def __init__(self, port: int, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def command(self, line: bytes) -> list[bytes]:
        """Send ``tag line``; return every response line up to the tagged one (inclusive)."""
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            got = self.file.readline()
            if not got:
                raise ConnectionError(f"closed; got so far {out!r}")
            out.append(got.rstrip(b"\r\n"))
            if got.startswith(tag + b" "):
                return out

    def close(self) -> None:
        self.file.close()
        self.sock.close()
