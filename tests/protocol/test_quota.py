"""QUOTA end to end on every backend: ``mailwing user quota``/``user list``, IMAP GETQUOTA,
GETQUOTAROOT and SETQUOTA (RFC 9208), ``NO [OVERQUOTA]`` on APPEND and COPY (MOVE within the
user is allowed), SMTP ``552 5.2.2`` for the over-quota recipient only, and ``mailwing
deliver`` exiting with EX_NOPERM; imapclient's quota calls."""

from __future__ import annotations

import imaplib
import re
import smtplib
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.imapclient import Quota

from tests.protocol.imap_wire_client import WireClient, lit
from tests.protocol.test_cli import one_line_error
from tests.protocol.test_imap_support import OTHER, PASSWORD, USER, simple, start
from tests.support import MailwingServer


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    s = start(server_factory, tmp_path, database_url, enable=("imap", "smtp"))
    s.add_user(OTHER, PASSWORD)
    return s


def client(srv: MailwingServer) -> WireClient:
    w = WireClient(srv.ports["imap"])
    w.login(USER, PASSWORD)
    return w


def listed_quota(srv: MailwingServer, address: str) -> list[str]:
    table = srv.cli("user", "list").stdout.decode().splitlines()
    return next(line.split() for line in table if line.startswith(address))


def test_cli_quota(srv: MailwingServer) -> None:
    out = srv.cli("user", "quota", USER.upper(), "2K").stdout.decode()
    assert out.strip() == f"quota of {USER} set to 2K"
    assert listed_quota(srv, USER)[-1] == "2K"
    srv.cli("user", "quota", USER, "1048577")
    assert listed_quota(srv, USER)[-1] == "1048577"
    srv.cli("user", "quota", USER, "none")
    assert listed_quota(srv, USER)[-1] == "unlimited"
    bad = srv.cli("user", "quota", USER, "lots", check=False)
    assert bad.returncode == 64 and "not a size" in one_line_error(bad)
    missing = srv.cli("user", "quota", "nobody@example.test", "1M", check=False)
    assert missing.returncode == 67 and "does not exist" in one_line_error(missing)


def test_imap_quota_and_enforcement(srv: MailwingServer) -> None:
    w = client(srv)
    got = w.command("Q", b"GETQUOTAROOT INBOX")
    assert got[0] == b"* QUOTAROOT INBOX" and got[-1].startswith(b"Q OK")
    assert w.command("Q", b'GETQUOTA ""')[0] == b'* QUOTA "" ()'
    srv.cli("user", "quota", USER, "2K")
    body = simple("x", "y" * 1000)  # ~1100 octets: one fits 2K, two do not
    assert w.command("A", b"APPEND INBOX " + lit(body))[-1].startswith(b"A OK")
    got = w.command("Q", b"GETQUOTAROOT INBOX")
    assert got[:2] == [b'* QUOTAROOT INBOX ""', b'* QUOTA "" (STORAGE 2 2)'], got
    assert w.command("Q", b'GETQUOTA ""')[0] == b'* QUOTA "" (STORAGE 2 2)'
    assert w.command("Q", b"GETQUOTA other")[-1].startswith(b"Q NO [NONEXISTENT]")
    # a MULTIAPPEND that would pass the limit stores nothing
    done = w.command("A", b"APPEND INBOX " + lit(b"Subject: s\r\n\r\nx\r\n") + b" " + lit(body))
    assert done[-1].startswith(b"A NO [OVERQUOTA]"), done
    assert w.command("A", b"APPEND Sent " + lit(body))[-1].startswith(b"A NO [OVERQUOTA]")
    w.command("S", b"SELECT INBOX")
    assert w.command("C", b"COPY 1 Trash")[-1].startswith(b"C NO [OVERQUOTA]")
    got = w.command("M", b"MOVE 1 Trash")  # nothing is added: allowed
    assert got[-1].startswith(b"M OK"), got
    assert w.command("E", b"SETQUOTA \"\" (STORAGE 99999)")[-1].startswith(b"E NO [NOPERM]")
    assert w.command("E", b"SETQUOTA")[-1].startswith(b"E BAD")
    assert listed_quota(srv, USER)[2:] == ["1", str(len(body)), "2K"]
    srv.cli("user", "quota", USER, "none")
    assert w.command("A", b"APPEND INBOX " + lit(body))[-1].startswith(b"A OK")
    w.close()


def test_smtp_refuses_only_the_over_quota_recipient(srv: MailwingServer) -> None:
    srv.cli("user", "quota", OTHER, "1K")
    big = simple("big", ("z" * 70 + "\r\n") * 30)
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as s:
        s.ehlo("client.test")
        assert s.mail("someone@example.net", [f"SIZE={len(big)}"])[0] == 250
        assert s.rcpt(USER)[0] == 250
        code, text = s.rcpt(OTHER)
        assert (code, text[:5]) == (552, b"5.2.2")
        assert s.data(big)[0] == 250
    # and without a declared SIZE, a message that fits nobody is refused at the end
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as s:
        s.ehlo("client.test")
        s.mail("someone@example.net")
        assert s.rcpt(OTHER)[0] == 250
        code, text = s.data(big)
        assert (code, text[:5]) == (552, b"5.2.2")
    w = client(srv)
    assert b"MESSAGES 1" in w.command("S", b"STATUS INBOX (MESSAGES)")[0]
    # mailwing deliver: EX_NOPERM (77) with a one-line reason, nothing stored
    result = srv.cli("deliver", "--to", OTHER, input=big, check=False)
    assert result.returncode == 77 and "over quota" in result.stderr.decode()
    assert srv.cli("user", "list").stdout.decode().count("unlimited") == 1
    assert listed_quota(srv, OTHER)[2:4] == ["0", "0"]


def test_imapclient_quota_calls(srv: MailwingServer) -> None:
    srv.cli("user", "quota", USER, "10M")
    with IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30) as c:
        c.login(USER, PASSWORD)
        assert c.has_capability("QUOTA") and c.has_capability("QUOTA=RES-STORAGE")
        c.append("INBOX", simple("q"))
        roots, quotas = c.get_quota_root("INBOX")
        assert roots.quota_roots == [""]
        assert [(q.resource, q.usage, q.limit) for q in quotas] == [("STORAGE", 1, 10240)]
        assert [(q.quota_root, q.resource, q.limit) for q in c._get_quota("")] == [
            ("", "STORAGE", 10240)]
        assert [q.usage for q in c.get_quota("INBOX")] == [1]
        with pytest.raises(imaplib.IMAP4.error, match="NOPERM"):
            c.set_quota([Quota("", "STORAGE", 0, 1)])
    assert re.search(r"\s10M$", " ".join(listed_quota(srv, USER)))
