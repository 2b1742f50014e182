"""POP3 against a real ``mailwing serve`` process, with stdlib poplib, on every backend.

Messages go in through ``mailwing deliver`` (which adds trace header fields in front), so
content checks compare the end of what RETR returns with what was delivered.
"""

from __future__ import annotations

import base64
import poplib
import ssl
from pathlib import Path

import pytest

from tests.support import MailwingServer

USER = "alice@example.test"
PASSWORD = "correct horse battery staple"


def start(server_factory: type[MailwingServer], tmp_path: Path, database_url: str,
          extra_config: str = "") -> MailwingServer:
    srv = server_factory(root=tmp_path / "srv", database_url=database_url,
                         enable=("pop3", "pop3s"), extra_config=extra_config).start()
    srv.add_user(USER, PASSWORD)
    return srv


@pytest.fixture
def server(server_factory: type[MailwingServer], tmp_path: Path,
           database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url)


def connect(srv: MailwingServer) -> poplib.POP3:
    c = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=30)
    c.user(USER)
    c.pass_(PASSWORD)
    return c


def tls_context(srv: MailwingServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.cert_path))
    ctx.check_hostname = False  # the certificate names the configured hostname (mail.test)
    return ctx


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


MESSAGES = [
    b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nlast\r\n",
    "Subject: utf8\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    "Grüße aus Köln — 日本語\r\n".encode(),
    b"Subject: bare lf\n\nline one\n.dotted\nline three\n",
]


def test_user_pass_retr_list_top(server: MailwingServer) -> None:
    for m in MESSAGES:
        server.deliver(USER, m)
    c = connect(server)
    count, total = c.stat()
    _, listing, _ = c.list()
    sizes = [int(line.split()[1]) for line in listing]
    assert count == 3 and total == sum(sizes)
    for i, m in enumerate(MESSAGES, 1):
        _, lines, _ = c.retr(i)
        data = b"\r\n".join(lines) + b"\r\n"
        assert data.endswith(crlf(m))
        assert len(data) == sizes[i - 1]
        assert c.list(i) == f"+OK {i} {sizes[i - 1]}".encode()
    _, top, _ = c.top(1, 1)
    assert top[-2:] == [b"", b".leading dot"]
    assert b"Subject: dots" in top
    c.quit()


@pytest.mark.slow
def test_ten_megabyte_message_byte_exact(server: MailwingServer) -> None:
    body = b"".join(b"%08d .... a line of text, some of it dotted\r\n.\r\n" % i
                    for i in range(200_000))
    msg = b"Subject: large\r\n\r\n" + body
    assert len(msg) > 10_000_000
    server.deliver(USER, msg)
    c = connect(server)
    size = int(c.list(1).split()[2])
    _, lines, _ = c.retr(1)
    data = b"\r\n".join(lines) + b"\r\n"
    assert data.endswith(msg) and len(data) == size
    c.quit()


def test_auth_plain_raw_commands(server: MailwingServer) -> None:
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    c = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    assert c._shortcmd("AUTH PLAIN " + token).startswith(b"+OK")  # type: ignore[attr-defined]
    assert c.stat() == (0, 0)
    c.quit()
    c = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    assert c._longcmd("AUTH")[1] == [b"PLAIN"]  # type: ignore[attr-defined]
    c._putcmd("AUTH PLAIN")  # type: ignore[attr-defined]
    assert c._getline()[0] == b"+ "  # type: ignore[attr-defined]
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] authentication cancelled"):
        c._shortcmd("*")  # type: ignore[attr-defined]
    bad = base64.b64encode(f"\0{USER}\0nope".encode()).decode()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        c._shortcmd("AUTH PLAIN " + bad)  # type: ignore[attr-defined]
    c._putcmd("AUTH PLAIN")  # type: ignore[attr-defined]
    c._getline()  # type: ignore[attr-defined]
    assert c._shortcmd(token).startswith(b"+OK")  # type: ignore[attr-defined]
    c.quit()


def test_stls_and_pop3s(server: MailwingServer) -> None:
    server.deliver(USER, MESSAGES[0])
    c = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    assert "STLS" in c.capa()
    c.stls(context=tls_context(server))
    assert "STLS" not in c.capa()
    with pytest.raises(poplib.error_proto, match="already active"):
        c._shortcmd("STLS")  # type: ignore[attr-defined]
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    c.quit()

    s = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=tls_context(server),
                        timeout=30)
    assert "STLS" not in s.capa()
    s.user(USER)
    s.pass_(PASSWORD)
    _, lines, _ = s.retr(1)
    assert (b"\r\n".join(lines) + b"\r\n").endswith(MESSAGES[0])
    s.quit()


def test_dele_quit_removes_drop_keeps(server: MailwingServer) -> None:
    for m in MESSAGES:
        server.deliver(USER, m)
    c = connect(server)
    c.dele(1)
    c.dele(3)
    c.sock.close()  # dropped without QUIT: nothing removed
    c = connect(server)
    assert c.stat()[0] == 3
    c.dele(2)
    with pytest.raises(poplib.error_proto, match="message 2 already deleted"):
        c.retr(2)
    assert c.quit().startswith(b"+OK")
    c = connect(server)
    assert c.stat()[0] == 2
    _, lines, _ = c.retr(2)
    assert (b"\r\n".join(lines) + b"\r\n").endswith(crlf(MESSAGES[2]))
    c.quit()


def test_two_sessions_and_stable_uidl(server: MailwingServer) -> None:
    for m in MESSAGES:
        server.deliver(USER, m)
    a, b = connect(server), connect(server)
    uidl = a.uidl()[1]
    assert b.uidl()[1] == uidl
    assert len({line.split()[1] for line in uidl}) == 3
    a.dele(2)
    assert a.quit().startswith(b"+OK")
    assert b.stat()[0] == 3  # b keeps its own snapshot
    b.dele(2)
    b.dele(3)
    assert b.quit().startswith(b"+OK")  # 2 was gone already; only 3 is removed now
    c = connect(server)
    assert c.uidl()[1] == [uidl[0]]
    c.quit()


def test_plaintext_refused(server_factory: type[MailwingServer], tmp_path: Path,
                           database_url: str) -> None:
    srv = start(server_factory, tmp_path, database_url,
                extra_config="[auth]\nallow_plaintext = false\n")
    c = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=30)
    caps = c.capa()
    assert "USER" not in caps and "SASL" not in caps and "STLS" in caps
    with pytest.raises(poplib.error_proto, match="STLS"):
        c.user(USER)
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    with pytest.raises(poplib.error_proto, match="STLS"):
        c._shortcmd("AUTH PLAIN " + token)  # type: ignore[attr-defined]
    c.stls(context=tls_context(srv))
    c.user(USER)
    assert c.pass_(PASSWORD).startswith(b"+OK")
    c.quit()


def test_maildrop_snapshot_follows_changes_made_elsewhere(server: MailwingServer) -> None:
    """Each login's maildrop is what the database holds at that login, also when the worker
    keeps the last snapshot of the mailbox (it is reused only while the mailbox's
    HIGHESTMODSEQ is unchanged): deliveries by another process and expunges are seen."""
    server.deliver(USER, MESSAGES[0])
    server.deliver(USER, MESSAGES[1])
    for _ in range(2):  # the second login may be answered from the worker's snapshot
        c = connect(server)
        assert c.stat()[0] == 2
        first = c.uidl()[1]
        c.quit()
    server.deliver(USER, MESSAGES[2])  # `mailwing deliver`: another process
    c = connect(server)
    assert c.stat()[0] == 3
    uidl = c.uidl()[1]
    assert uidl[:2] == first
    _, lines, _ = c.retr(3)
    assert (b"\r\n".join(lines) + b"\r\n").endswith(crlf(MESSAGES[2]))
    c.dele(1)
    c.quit()
    c = connect(server)
    assert [line.split()[1] for line in c.uidl()[1]] == [line.split()[1] for line in uidl[1:]]
    c.quit()
