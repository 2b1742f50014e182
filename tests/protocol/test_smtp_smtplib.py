"""SMTP against a real ``mailwing serve`` with stdlib smtplib (and poplib to read back).

The core set (MX delivery fetched byte-identical via POP3, several recipients, relay refusal,
submission with STARTTLS + AUTH) runs on every backend; the rest on SQLite.
"""

from __future__ import annotations

import base64
import poplib
import smtplib
import ssl
from pathlib import Path

import pytest

from tests.support import MailwingServer

ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "correct horse battery staple"
ENABLE = ("smtp", "submission", "smtps", "pop3")


def start(factory: type[MailwingServer], root: Path, database_url: str,
          extra_config: str = "") -> MailwingServer:
    srv = factory(root=root, database_url=database_url, enable=ENABLE,
                  extra_config=extra_config).start()
    srv.add_user(ALICE, PASSWORD)
    srv.add_user(BOB, PASSWORD)
    return srv


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path,
           database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path / "srv", database_url)


@pytest.fixture
def sqlite_server(server_factory: type[MailwingServer], tmp_path: Path) -> MailwingServer:
    return start(server_factory, tmp_path / "srv", f"sqlite:///{tmp_path / 'm.db'}")


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate
    return ctx


def mx(srv: MailwingServer) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)


def submission(srv: MailwingServer, user: str = ALICE) -> smtplib.SMTP:
    s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=30)
    s.starttls(context=tls_context())
    s.login(user, PASSWORD)
    return s


def fetch_all(srv: MailwingServer, user: str) -> list[bytes]:
    p = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=30)
    p.user(user)
    p.pass_(PASSWORD)
    count, _ = p.stat()
    out = [b"\r\n".join(p.retr(i)[1]) + b"\r\n" for i in range(1, count + 1)]
    p.quit()
    return out


def below_trace(data: bytes) -> bytes:
    """The message as sent: what follows the Return-Path and Received fields we add."""
    assert data.startswith(b"Return-Path: <")
    lines = data.split(b"\r\n")
    i = 1
    assert lines[i].startswith(b"Received: ")
    i += 1
    while lines[i].startswith(b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


MESSAGE = (b"From: Sender <sender@remote.test>\r\nTo: alice@example.test\r\n"
           b"Subject: round trip\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n")


# -- every backend -------------------------------------------------------------------------
def test_mx_delivery_round_trips_byte_for_byte(server: MailwingServer) -> None:
    with mx(server) as s:
        code, caps = s.ehlo("client.test")
        assert code == 250 and b"PIPELINING" in caps and b"CHUNKING" in caps
        assert s.sendmail("sender@remote.test", [ALICE], MESSAGE) == {}
    (stored,) = fetch_all(server, ALICE)
    assert below_trace(stored) == MESSAGE
    assert stored.startswith(b"Return-Path: <sender@remote.test>\r\nReceived: from client.test")
    assert b"for <alice@example.test>" in stored


def test_several_recipients_get_the_same_message(server: MailwingServer) -> None:
    with mx(server) as s:
        assert s.sendmail("sender@remote.test", [ALICE, BOB], MESSAGE) == {}
    (a,), (b,) = fetch_all(server, ALICE), fetch_all(server, BOB)
    assert a == b and below_trace(a) == MESSAGE
    assert b"for <" not in a  # no per-recipient clause: one content for both


def test_relay_is_denied_without_auth(server: MailwingServer) -> None:
    with mx(server) as s:
        s.ehlo("client.test")
        s.mail("sender@remote.test")
        code, text = s.rcpt("someone@elsewhere.test")
        assert (code, text[:5]) == (554, b"5.7.1")


def test_submission_starttls_login_send(server: MailwingServer) -> None:
    with submission(server) as s:
        msg = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: s\r\n\r\nhi\r\n"
        assert s.sendmail(ALICE, [BOB], msg) == {}
    (stored,) = fetch_all(server, BOB)
    assert below_trace(stored) == msg
    assert b"with ESMTPSA" in stored and b"(authenticated as alice@example.test)" in stored


# -- SQLite only -----------------------------------------------------------------------------
def test_unknown_user_and_recipient_limit(sqlite_server: MailwingServer) -> None:
    with mx(sqlite_server) as s:
        s.ehlo("client.test")
        s.mail("sender@remote.test")
        code, text = s.rcpt("nobody@example.test")
        assert (code, text[:5]) == (550, b"5.1.1")
        replies = [s.rcpt(ALICE)[0] for _ in range(101)]
        assert replies[:100] == [250] * 100 and replies[100] == 452
        assert s.rcpt(ALICE)[1][:5] == b"4.5.3"


def test_remote_recipient_for_authenticated_user_is_accepted_for_the_queue(
        sqlite_server: MailwingServer) -> None:
    """With [outbound] enabled (the default) an authenticated user's remote recipient is
    accepted at RCPT (queued after DATA; tests/protocol/test_outbound_*.py deliver it);
    without AUTH it stays 554 5.7.1 relay denied."""
    with submission(sqlite_server) as s:
        s.mail(ALICE)
        assert s.rcpt("friend@elsewhere.test")[0] == 250
        s.rset()
    with mx(sqlite_server) as s:
        s.ehlo("client.test")
        s.mail("sender@remote.test")
        code, text = s.rcpt("friend@elsewhere.test")
        assert (code, text[:5]) == (554, b"5.7.1")


def test_submission_requires_auth(sqlite_server: MailwingServer) -> None:
    with smtplib.SMTP("127.0.0.1", sqlite_server.ports["submission"], timeout=30) as s:
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        code, text = s.mail(ALICE)
        assert (code, text) == (530, b"5.7.0 Authentication required")


def test_smtps_implicit_tls(sqlite_server: MailwingServer) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", sqlite_server.ports["smtps"], timeout=30,
                          context=tls_context()) as s:
        _code, caps = s.ehlo("client.test")
        assert b"STARTTLS" not in caps and b"AUTH PLAIN LOGIN" in caps
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, [ALICE], b"From: alice@example.test\r\n\r\nx\r\n") == {}
    assert len(fetch_all(sqlite_server, ALICE)) == 1


def test_auth_plain_login_failures_and_421(sqlite_server: MailwingServer) -> None:
    with smtplib.SMTP("127.0.0.1", sqlite_server.ports["submission"], timeout=30) as s:
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        bad = base64.b64encode(f"\0{ALICE}\0wrong".encode()).decode()
        assert s.docmd("AUTH", f"PLAIN {bad}")[0] == 535
        code, challenge = s.docmd("AUTH", "LOGIN")
        assert (code, challenge) == (334, b"VXNlcm5hbWU6")
        assert s.docmd(base64.b64encode(ALICE.encode()).decode())[0] == 334
        code, text = s.docmd(base64.b64encode(b"wrong").decode())
        assert (code, text[:5]) == (535, b"5.7.8")
        code, text = s.docmd("AUTH", f"PLAIN {bad}")
        assert (code, text[:5]) == (421, b"4.7.0")
    with smtplib.SMTP("127.0.0.1", sqlite_server.ports["submission"], timeout=30) as s:
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        s.esmtp_features["auth"] = "LOGIN"  # make smtplib use AUTH LOGIN
        s.login(ALICE, PASSWORD)


def test_sender_must_be_the_authenticated_user(sqlite_server: MailwingServer) -> None:
    with submission(sqlite_server) as s:
        code, text = s.mail("someone.else@example.test")
        assert (code, text[:5]) == (553, b"5.7.1")
        s.rset()
        with pytest.raises(smtplib.SMTPDataError) as info:
            s.sendmail(ALICE, [BOB], b"From: boss@example.test\r\n\r\nfake\r\n")
        assert info.value.smtp_code == 553
    assert fetch_all(sqlite_server, BOB) == []


def test_size_declared_and_actual(server_factory: type[MailwingServer],
                                  tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path / "srv", f"sqlite:///{tmp_path / 'm.db'}",
                "[limits]\nmax_message_size = 100000\n")
    with mx(srv) as s:
        s.ehlo("client.test")
        assert b"SIZE 100000" in s.ehlo_resp  # type: ignore[operator]
        code, text = s.mail("a@remote.test", ["SIZE=100001"])
        assert (code, text[:5]) == (552, b"5.3.4")
        big = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 1400
        assert s.mail("a@remote.test")[0] == 250  # no SIZE: the limit bites at the end
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.data(big)
        assert (code, text[:5]) == (552, b"5.3.4")
        assert s.noop()[0] == 250
    assert fetch_all(srv, ALICE) == []


def test_smtputf8_address(sqlite_server: MailwingServer) -> None:
    sender = "jörg@exämple.test"
    msg = "From: jörg@exämple.test\r\nSubject: ü\r\n\r\nGrüße\r\n".encode()
    with mx(sqlite_server) as s:
        s.ehlo("client.test")
        s.send(f"MAIL FROM:<{sender}>\r\n".encode())
        code, text = s.getreply()
        assert (code, text[:5]) == (553, b"5.6.7")  # UTF-8 without the SMTPUTF8 parameter
        assert s.sendmail(sender, [ALICE], msg, mail_options=["SMTPUTF8"]) == {}
    (stored,) = fetch_all(sqlite_server, ALICE)
    assert below_trace(stored) == msg
    assert "Return-Path: <jörg@exämple.test>".encode() in stored
    assert b"with UTF8SMTP" in stored


def test_bdat_via_raw_commands(sqlite_server: MailwingServer) -> None:
    with mx(sqlite_server) as s:
        s.ehlo("client.test")
        s.mail("a@remote.test", ["BODY=BINARYMIME"])
        s.rcpt(ALICE)
        body = b"Subject: chunked\r\n\r\nbinary\x00ok\r\n"
        s.send(b"BDAT 10\r\n" + body[:10])
        assert s.getreply()[0] == 250
        s.send(b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:])
        code, text = s.getreply()
        assert code == 250 and b"queued as" in text
    (stored,) = fetch_all(sqlite_server, ALICE)
    assert below_trace(stored) == body
