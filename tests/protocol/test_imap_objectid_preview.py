"""STATUS=SIZE (RFC 8438), OBJECTID (RFC 8474) and PREVIEW (RFC 8970) over real sockets on
both backends."""

from __future__ import annotations

import re
from pathlib import Path

import imapclient
import pytest

from tests.protocol.test_imap_support import (
    MULTIPART,
    PASSWORD,
    USER,
    Raw,
    connect,
    ok,
    simple,
    start,
)
from tests.support import MailwingServer

HTML = (b"From: a@example.test\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
        b"\r\n\r\n<html><head><style>p {}</style></head><body><p>Gr=C3=BC&szlig;e"
        b"<br>aus&nbsp;Bern</p><!-- hidden --></body></html>\r\n")
LONG = simple("long", "> quoted line\r\n" + "word " * 100)
BARE_LF = b"Subject: lf\n\nbody\n"


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url)


def login(srv: MailwingServer) -> Raw:
    r = Raw(srv.ports["imap"])
    r.command(f'l LOGIN {USER} "{PASSWORD}"'.encode())
    return r


def test_status_size(srv: MailwingServer) -> None:
    c = connect(srv)
    ok(c.append("INBOX", "", None, simple("one")))
    ok(c.append("INBOX", "", None, BARE_LF))  # imaplib sends it with CRLF: 21 octets
    got = ok(c.status("INBOX", "(MESSAGES SIZE)"))[0]
    assert got == b"INBOX (MESSAGES 2 SIZE %d)" % (len(simple("one")) + 21)
    assert ok(c.status("Trash", "(SIZE)"))[0] == b"Trash (SIZE 0)"


def test_mailboxid(srv: MailwingServer) -> None:
    r = login(srv)
    created = r.command(b"a CREATE Projects")[-1]
    m = re.fullmatch(rb"a OK \[MAILBOXID \((M[0-9a-f]+)\)\] CREATE completed", created)
    assert m is not None, created
    mbid = m.group(1)
    assert r.command(b"b STATUS Projects (MAILBOXID)")[0] == (
        b"* STATUS Projects (MAILBOXID (" + mbid + b"))")
    selected = r.command(b"c EXAMINE Projects")
    assert b"* OK [MAILBOXID (" + mbid + b")] Mailbox id" in selected
    # RENAME keeps the id (RFC 8474 section 4.1); a new mailbox of an old name gets a new one
    r.command(b"d UNSELECT")
    assert r.command(b"e RENAME Projects Old")[-1].startswith(b"e OK")
    assert mbid in r.command(b"f STATUS Old (MAILBOXID)")[0]
    r.command(b"g CREATE Projects")
    assert mbid not in r.command(b"h STATUS Projects (MAILBOXID)")[0]
    inbox = r.command(b"i STATUS INBOX (MAILBOXID)")[0]
    assert mbid not in inbox and b"MAILBOXID (M" in inbox


def test_emailid_threadid_and_search(srv: MailwingServer) -> None:
    c = connect(srv)
    ok(c.append("INBOX", "", None, simple("one")))
    ok(c.append("INBOX", "", None, simple("two")))
    r = login(srv)
    r.command(b"s SELECT INBOX")
    lines = r.command(b"a FETCH 1:2 (EMAILID THREADID)")
    ids = [re.search(rb"EMAILID \((E[0-9a-f]+)\)", x).group(1) for x in lines[:2]]  # type: ignore[union-attr]
    assert ids[0] != ids[1] and all(b"THREADID NIL" in x for x in lines[:2])
    # a copy keeps its EMAILID (RFC 8474 section 5.1)
    r.command(b"b COPY 2 INBOX")
    copied = r.command(b"c FETCH 3 (EMAILID)")[0]
    assert ids[1] in copied
    assert r.command(b"d SEARCH EMAILID " + ids[1])[0] == b"* SEARCH 2 3"
    assert r.command(b"e SEARCH THREADID T1")[0] == b"* SEARCH"
    assert r.command(b"f SEARCH EMAILID bad.id")[-1].startswith(b"f BAD")


def test_preview(srv: MailwingServer) -> None:
    c = connect(srv)
    for raw in (simple("plain", "Hello   there,\r\nsecond line"), MULTIPART, HTML, LONG,
                b"Subject: no body\r\nContent-Type: image/png\r\n\r\nxxxx\r\n"):
        ok(c.append("INBOX", "", None, raw))
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30)
    client.login(USER, PASSWORD)
    client.select_folder("INBOX")
    got = client.fetch([1, 2, 3, 4, 5], ["PREVIEW"])
    assert got[1][b"PREVIEW"] == b"Hello there, second line"
    assert got[2][b"PREVIEW"] == b"Hello plain"
    assert got[3][b"PREVIEW"].decode() == "Grüße aus Bern"  # nbsp is white space too
    assert got[4][b"PREVIEW"] == ("word " * 40).strip().encode()  # 200 chars, quote dropped
    assert got[5][b"PREVIEW"] == b""
    lazy = client.fetch([1], ["PREVIEW (LAZY)"])
    assert lazy[1][b"PREVIEW"] == b"Hello there, second line"
    assert b"\\Seen" not in client.get_flags([1])[1]  # PREVIEW does not set \Seen
    client.logout()
    r = login(srv)
    r.command(b"s SELECT INBOX")
    assert r.command(b"a FETCH 1 (PREVIEW (FAST))")[-1].startswith(b"a BAD")
