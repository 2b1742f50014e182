"""SEARCH and UID SEARCH on SQLite (RFC 3501 6.4.4): flag, size, date, UID, sequence,
header, body and text keys, OR/NOT/parentheses, CHARSET, and STORE variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.protocol.test_imap_support import MULTIPART, PASSWORD, USER, Raw, connect, ok, start
from tests.support import MailwingServer


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path) -> MailwingServer:
    return start(server_factory, tmp_path)


MESSAGES = [
    (b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Lunch plans\r\n"
     b"Date: Mon, 05 Jan 2026 09:00:00 +0000\r\nX-Prio: high\r\n\r\nLet us meet at noon.\r\n",
     r"(\Seen)", '"05-Jan-2026 09:00:00 +0000"'),
    (b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.test>\r\nTo: alice@example.test\r\n"
     b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Sat, 10 Jan 2026 09:00:00 +0000\r\n"
     b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
     b"\r\n\r\nSch=C3=B6ne Stra=C3=9Fe\r\n",
     r"(\Flagged)", '"10-Jan-2026 09:00:00 +0000"'),
    (MULTIPART, "", '"20-Jan-2026 09:00:00 +0000"'),
]


def test_search_keys(srv: MailwingServer) -> None:
    c = connect(srv)
    for raw, flags, date in MESSAGES:
        ok(c.append("INBOX", flags, date, raw))
    ok(c.select("INBOX"))

    def search(*criteria: str) -> bytes:
        return ok(c.search(None, *criteria))[0]

    assert search("ALL") == b"1 2 3"
    assert search("SEEN") == b"1" and search("UNSEEN") == b"2 3"
    assert search("FLAGGED") == b"2" and search("NOT", "FLAGGED") == b"1 3"
    assert search("OR", "SEEN", "FLAGGED") == b"1 2"
    assert search("(OR SEEN FLAGGED)", "SUBJECT", "lunch") == b"1"
    assert search("RECENT") == b"1 2 3" and search("NEW") == b"2 3" and search("OLD") == b""
    assert search("FROM", "BOB") == b"1"
    r = Raw(srv.ports["imap"])
    r.command(f'u1 LOGIN {USER} "{PASSWORD}"'.encode())
    r.command(b"u2 SELECT INBOX")

    def utf8(key: str, value: str) -> bytes:
        raw = value.encode()
        return r.command(b"u3 SEARCH CHARSET UTF-8 %s {%d+}\r\n%s" % (
            key.encode(), len(raw), raw))[0]

    assert utf8("FROM", "jürgen") == b"* SEARCH 2"  # RFC 2047 decoded, case-folded
    assert utf8("SUBJECT", "GRÜSSE") == b"* SEARCH 2"  # casefold: ß matches SS
    assert utf8("SUBJECT", "GRÜßE") == b"* SEARCH 2"
    assert utf8("BODY", "straße") == b"* SEARCH 2"  # quoted-printable decoded
    r.close()
    assert search("TO", "carol") == b"3" and search("CC", "carol") == b""
    assert search("HEADER", "X-Prio", "HIGH") == b"1"
    assert search("HEADER", "X-Prio", '""') == b"1"
    assert search("BODY", "noon") == b"1"
    assert search("TEXT", "multipart") == b"3" and search("BODY", "multipart") == b""
    assert search("BODY", "hello") == b"3"
    assert search("SINCE", "10-Jan-2026") == b"2 3"
    assert search("BEFORE", "10-Jan-2026") == b"1" and search("ON", "20-Jan-2026") == b"3"
    assert search("SENTSINCE", "06-Jan-2026") == b"2"  # the multipart was sent on the 2nd
    assert search("SENTON", "02-Jan-2026") == b"3"
    assert search("LARGER", "300") == b"3" and search("SMALLER", "300") == b"1 2"
    assert search("2:*") == b"2 3" and search("UID", "1,3") == b"1 3"
    assert ok(c.uid("SEARCH", "UID", "2:*"))[0] == b"2 3"
    assert ok(c.uid("SEARCH", "NOT", "UID", "2"))[0] == b"1 3"
    typ, data = c.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]
    c.logout()


def test_store_variants(srv: MailwingServer) -> None:
    c = connect(srv)
    for raw, _, _ in MESSAGES:
        ok(c.append("INBOX", "", None, raw))
    ok(c.select("INBOX"))
    assert ok(c.store("1", "FLAGS", r"(\Answered $Label)")) == [
        b"1 (FLAGS ($Label \\Answered \\Recent))"]
    assert ok(c.store("1", "-FLAGS", "($Label)")) == [b"1 (FLAGS (\\Answered \\Recent))"]
    assert ok(c.store("1:3", "+FLAGS.SILENT", r"(\Draft)")) == [None]
    assert ok(c.uid("STORE", "2", "-FLAGS", r"(\Draft)")) == [
        b"2 (UID 2 FLAGS (\\Recent))"]
    assert ok(c.search(None, "DRAFT")) == [b"1 3"]
    assert ok(c.store("3", "FLAGS.SILENT", "()")) == [None]
    assert ok(c.search(None, "DRAFT")) == [b"1"]
    c.logout()
