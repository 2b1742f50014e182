"""APPEND extensions over real sockets on every backend: MULTIAPPEND (RFC 3502, all or none,
APPENDUID with a uid-set), CATENATE (RFC 4469, TEXT and URL parts, BADURL, TOOBIG), literal8
APPEND and FETCH BINARY / BINARY.PEEK / BINARY.SIZE (RFC 3516, UNKNOWN-CTE), APPENDLIMIT
(RFC 7889); imapclient's multiappend."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.protocol.imap_wire_client import WireClient, lit
from tests.protocol.test_imap_support import MULTIPART, OTHER, PASSWORD, USER, simple, start
from tests.support import MailwingServer


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url,
                 extra_config="[limits]\nmax_message_size = 4096\n")


def client(srv: MailwingServer) -> WireClient:
    w = WireClient(srv.ports["imap"])
    w.login(USER, PASSWORD)
    return w


def count(w: WireClient, box: str = "INBOX") -> int:
    got = w.command("S", b"STATUS %s (MESSAGES)" % box.encode())
    m = re.search(rb"MESSAGES (\d+)", got[0])
    assert m is not None, got
    return int(m.group(1))


def test_capabilities_and_appendlimit(srv: MailwingServer) -> None:
    w = WireClient(srv.ports["imap"])
    for cap in (b"MULTIAPPEND", b"CATENATE", b"BINARY", b"APPENDLIMIT=4096"):
        assert b" " + cap + b" " in w.greeting
    w.close()


def test_multiappend_all_or_none(srv: MailwingServer) -> None:
    w = client(srv)
    a, b, c = simple("one"), simple("two"), simple("three")
    done = w.command("A1", b"APPEND INBOX (\\Seen) " + lit(a) + b' (\\Flagged $X) '
                     b'"02-Jan-2026 10:00:00 +0000" ' + lit(b) + b" " + lit(c))
    m = re.fullmatch(rb"A1 OK \[APPENDUID (\d+) 1:3\] APPEND completed", done[-1])
    assert m is not None, done
    got = w.command("F", b"SELECT INBOX")
    assert b"* 3 EXISTS" in got
    got = w.command("F", b"FETCH 1:3 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"FLAGS (\\Recent \\Seen)" in got[0] and b"Subject: one" in got[0]
    assert b"FLAGS ($X \\Flagged \\Recent)" in got[1] and b"02-Jan-2026 10:00:00" in got[1]
    assert b"Subject: three" in got[2]
    # a bad second message (a URL that names nothing) stores neither
    done = w.command("A2", b"APPEND INBOX " + lit(simple("four")) +
                     b' CATENATE (URL "/INBOX/;UID=99")')
    assert done[-1].startswith(b"A2 NO [BADURL /INBOX/;UID=99]"), done
    # so does a catenated second message over APPENDLIMIT
    done = w.command("A3", b"APPEND INBOX " + lit(simple("five")) + b" CATENATE (TEXT " +
                     lit(b"x" * 3000) + b" TEXT " + lit(b"y" * 3000) + b")")
    assert done[-1].startswith(b"A3 NO [TOOBIG]"), done
    assert count(w) == 3
    # a target that does not exist
    done = w.command("A4", b"APPEND Nope " + lit(a) + b" " + lit(b))
    assert done[-1].startswith(b"A4 NO [TRYCREATE]")
    # syntax: a second message must be a literal too
    assert w.command("A5", b"APPEND INBOX " + lit(a) + b" hello")[-1].startswith(b"A5 BAD")
    w.close()


def test_catenate(srv: MailwingServer) -> None:
    w = client(srv)
    done = w.command("A", b"APPEND INBOX " + lit(MULTIPART))
    uidvalidity = int(re.search(rb"APPENDUID (\d+)", done[-1]).group(1))  # type: ignore[union-attr]
    head = b"From: alice@example.test\r\nSubject: forwarded\r\n\r\n"
    url = b"/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=1" % uidvalidity
    done = w.command("B", b"APPEND Drafts CATENATE (TEXT " + lit(head) + b' URL "' + url +
                     b'" TEXT ' + lit(b"\r\n-- \r\nsig\r\n") + b")")
    assert re.fullmatch(rb"B OK \[APPENDUID \d+ 1\] APPEND completed", done[-1]), done
    # absolute URL with the user, percent-encoded; the whole message
    whole = b"imap://alice%40example.test@mail.test/INBOX/;UID=1"
    done = w.command("C", b'APPEND Drafts CATENATE (URL "' + whole + b'")')
    assert done[-1].startswith(b"C OK"), done
    # relative to the selected mailbox: ;UID=1/;SECTION=HEADER
    w.command("S", b"SELECT INBOX")
    done = w.command("D", b'APPEND Drafts CATENATE (URL ";UID=1/;SECTION=HEADER" TEXT ' +
                     lit(b"body\r\n") + b")")
    assert done[-1].startswith(b"D OK"), done
    w.command("S", b"SELECT Drafts")
    got = w.command("F", b"FETCH 1:3 BODY.PEEK[]")
    # part 1 ends before the CRLF of its delimiter
    assert got[0].endswith(head + b"Hello plain" + b"\r\n-- \r\nsig\r\n)")
    assert got[1].endswith(MULTIPART + b")")
    header = MULTIPART.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert got[2].endswith(header + b"body\r\n)")
    # the URL fetch did not set \Seen on the source
    w.command("S", b"EXAMINE INBOX")
    assert b"\\Seen" not in w.command("F", b"FETCH 1 FLAGS")[0]
    for bad in (b"/INBOX;UIDVALIDITY=%d/;UID=1" % (uidvalidity + 1),  # stale UIDVALIDITY
                b"/INBOX/;UID=7", b"/Nope/;UID=1", b"/INBOX/;UID=1/;SECTION=9",
                b"imap://bob%40example.test@mail.test/INBOX/;UID=1",  # another user's
                b"http://example.test/", b"/INBOX/;UID=1/;URLAUTH=anonymous"):
        done = w.command("E", b'APPEND Drafts CATENATE (URL "' + bad + b'")')
        assert done[-1].startswith(b"E NO [BADURL " + bad + b"]"), (bad, done)
    w.command("U", b"UNSELECT")
    done = w.command("G", b'APPEND Drafts CATENATE (URL ";UID=1")')  # nothing selected
    assert done[-1].startswith(b"G NO [BADURL"), done
    many = b" ".join([b'URL "/INBOX/;UID=1"'] * 9)  # 9 x MULTIPART > 4096
    done = w.command("H", b"APPEND Drafts CATENATE (" + many + b")")
    assert done[-1].startswith(b"H NO [TOOBIG]"), done
    assert w.command("I", b"APPEND Drafts CATENATE ()")[-1].startswith(b"I BAD")
    assert w.command("J", b"APPEND Drafts CATENATE (BODY x)")[-1].startswith(b"J BAD")
    assert count(w, "Drafts") == 3
    w.close()


BINARY_MSG = (
    b"From: bob@example.test\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9 au =\r\nlait\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAw==\r\n"
    b"--b\r\nContent-Type: application/x-foo\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\n"
    b"--b--\r\n"
)


def test_binary_fetch_and_literal8_append(srv: MailwingServer) -> None:
    w = client(srv)
    w.command("A", b"APPEND INBOX " + lit(BINARY_MSG))
    w.command("S", b"SELECT INBOX")
    got = w.command("F", b"FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[1])")
    assert got[0] == (b"* 1 FETCH (BINARY[2] ~{4}\r\n\x00\x01\x02\x03 BINARY.SIZE[2] 4 "
                      b"BINARY.SIZE[1] 13)"), got
    assert b"\\Seen" not in w.command("F", b"FETCH 1 FLAGS")[0]
    got = w.command("F", b"FETCH 1 (BINARY[1]<2.5>)")
    assert got[0].startswith(b"* 1 FETCH (BINARY[1]<2> {5}\r\nf\xc3\xa9 a") and b"\\Seen" in got[0]
    got = w.command("F", b"FETCH 1 (BINARY.PEEK[] BINARY.PEEK[9])")
    assert got[0] == (b"* 1 FETCH (BINARY[] {%d}\r\n" % len(BINARY_MSG) + BINARY_MSG +
                      b' BINARY[9] "")')
    got = w.command("F", b"FETCH 1 BINARY.PEEK[3]")
    assert got[-1].startswith(b"F NO [UNKNOWN-CTE]"), got
    assert w.command("F", b"FETCH 1 BINARY[1.MIME]")[-1].startswith(b"F BAD")
    assert w.command("F", b"FETCH 1 BINARY.SIZE[1]<0.1>")[-1].startswith(b"F BAD")
    # a literal8 APPEND keeps NUL octets as they were sent
    raw = b"Subject: raw\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01zz\r\n"
    done = w.command("B", b"APPEND INBOX " + lit(raw, binary=True))
    assert done[-1].startswith(b"B OK [APPENDUID"), done
    got = w.command("F", b"FETCH 2 (RFC822.SIZE BINARY.PEEK[1] BINARY.SIZE[1])")
    assert got[0] == (b"* 2 FETCH (RFC822.SIZE %d BINARY[1] ~{6}\r\n\x00\x01zz\r\n "
                      b"BINARY.SIZE[1] 6)" % len(raw)), got
    w.close()


def test_imapclient_multiappend(srv: MailwingServer) -> None:
    with IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30) as c:
        c.login(USER, PASSWORD)
        assert c.has_capability("MULTIAPPEND")
        result = c.multiappend("INBOX", [simple("x"), {"msg": simple("y"),
                                                      "flags": [b"\\Seen"]}])
        assert re.search(r"APPENDUID \d+ 1:2", str(result)), result
        c.select_folder("INBOX")
        assert sorted(c.search()) == [1, 2]
        assert b"\\Seen" in c.get_flags([2])[2] and b"\\Seen" not in c.get_flags([1])[1]


def test_other_user_mailbox_is_not_reachable(srv: MailwingServer) -> None:
    srv.add_user(OTHER, PASSWORD)
    b = WireClient(srv.ports["imap"])
    b.login(OTHER, PASSWORD)
    b.command("A", b"APPEND INBOX " + lit(simple("bob's")))
    b.close()
    w = client(srv)
    done = w.command("A", b'APPEND INBOX CATENATE (URL "imap://bob%40example.test@mail.test'
                     b'/INBOX/;UID=1")')
    assert done[-1].startswith(b"A NO [BADURL"), done
    w.close()


def test_status_appendlimit(srv: MailwingServer) -> None:
    w = client(srv)
    got = w.command("S", b"STATUS INBOX (APPENDLIMIT MESSAGES)")
    assert got[0] == b"* STATUS INBOX (APPENDLIMIT 4096 MESSAGES 0)", got
    w.close()
