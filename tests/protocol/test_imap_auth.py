"""IMAP login paths on SQLite: LOGIN, AUTHENTICATE PLAIN (SASL-IR and continuation),
LOGINDISABLED/PRIVACYREQUIRED before TLS, STARTTLS, IMAPS with the server's certificate,
and the session closing after too many failed logins (RFC 3501 6.2, RFC 4959, RFC 5530)."""

from __future__ import annotations

import base64
import imaplib
import socket
from pathlib import Path

import imapclient

from tests.protocol.test_imap_support import PASSWORD, USER, Raw, connect, ok, start, tls_context
from tests.support import MailwingServer

NO_PLAINTEXT = "[auth]\nallow_plaintext = false\n"


def plain(user: str = USER, password: str = PASSWORD) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


def test_authenticate_plain(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path)
    r = Raw(srv.ports["imap"])
    assert r.command(b"a1 AUTHENTICATE PLAIN " + plain())[-1].startswith(
        b"a1 OK [CAPABILITY IMAP4rev1 ")
    r.close()
    r = Raw(srv.ports["imap"])
    r.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send(plain(password="nope") + b"\r\n")
    assert r.until(b"a1") == [b"a1 NO [AUTHENTICATIONFAILED] Authentication failed"]
    r.send(b"a2 AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send(b"*\r\n")
    assert r.until(b"a2")[-1].startswith(b"a2 BAD")
    assert r.command(b"a3 AUTHENTICATE PLAIN !!!notbase64")[-1].startswith(b"a3 BAD")
    r.close()
    c = connect(srv, login=False)
    ok(c.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode()))
    c.logout()


def test_too_many_auth_failures(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, extra_config="[limits]\nmax_auth_failures = 2\n")
    r = Raw(srv.ports["imap"])
    assert r.command(b"a1 LOGIN alice@example.test bad")[-1].startswith(b"a1 NO")
    lines = r.command(b"a2 LOGIN alice@example.test bad")
    assert lines[-1].startswith(b"a2 NO [AUTHENTICATIONFAILED]")
    assert r.line().startswith(b"* BYE")
    assert r.line() == b""  # closed
    r.close()


def test_starttls_and_logindisabled(server_factory: type[MailwingServer],
                                    tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, extra_config=NO_PLAINTEXT)
    c = connect(srv, login=False)
    caps = ok(c.capability())[-1].split()
    assert b"LOGINDISABLED" in caps and b"STARTTLS" in caps and b"AUTH=PLAIN" not in caps
    typ, data = c._simple_command("LOGIN", USER, '"x"')
    assert typ == "NO" and b"[PRIVACYREQUIRED]" in data[0]
    ok(c.starttls(tls_context(srv)))
    caps = ok(c.capability())[-1].split()
    assert b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps and b"AUTH=PLAIN" in caps
    ok(c.login(USER, PASSWORD))
    assert ok(c.select("INBOX")) == [b"0"]
    c.logout()


def test_imaps(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, extra_config=NO_PLAINTEXT)
    c = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=tls_context(srv),
                          timeout=30)
    assert b"STARTTLS" not in c.welcome and b"AUTH=PLAIN" in c.welcome
    ok(c.login(USER, PASSWORD))
    c.logout()
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imaps"], ssl=True,
                                   ssl_context=tls_context(srv), timeout=30)
    client.login(USER, PASSWORD)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()
    # STARTTLS on an implicit-TLS connection is refused
    raw = tls_context(srv).wrap_socket(socket.create_connection(("127.0.0.1",
                                                                 srv.ports["imaps"])))
    r = Raw(0, sock=raw)
    assert r.command(b"s1 STARTTLS")[-1].startswith(b"s1 BAD")
    r.close()
