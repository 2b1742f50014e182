"""ENABLE UTF8=ACCEPT (RFC 6855) and ENABLE IMAP4rev2 (RFC 9051) over real sockets on every
backend: UTF-8 mailbox names both ways, ``UTF8 (~{n})`` APPEND data, and the IMAP4rev2
differences (no \\Recent/RECENT, SELECT's LIST and no UNSEEN, ``OK [CLOSED]``, ESEARCH)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.protocol.imap_wire_client import WireClient, lit
from tests.protocol.test_imap_support import PASSWORD, USER, simple, start
from tests.support import MailwingServer


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url)


def client(srv: MailwingServer) -> WireClient:
    w = WireClient(srv.ports["imap"])
    w.login(USER, PASSWORD)
    return w


def test_utf8_accept(srv: MailwingServer) -> None:
    w = client(srv)
    assert w.command("E", b"ENABLE UTF8=ACCEPT BOGUS") == [b"* ENABLED UTF8=ACCEPT",
                                                         b"E OK Enabled"]
    assert w.command("E", b"ENABLE UTF8=ACCEPT") == [b"* ENABLED", b"E OK Enabled"]
    name = "Entw\u00fcrfe".encode()
    assert w.command("C", b'CREATE "' + name + b'"')[-1].startswith(b"C OK")
    got = w.command("L", b'LIST "" "Entw*"')
    assert got[0] == b'* LIST (\\HasNoChildren) "/" "' + name + b'"', got
    got = w.command("S", b'STATUS "' + name + b'" (MESSAGES)')
    assert got[0] == b'* STATUS "' + name + b'" (MESSAGES 0)'
    msg = "From: j\u00f6rg@example.test\r\nSubject: gr\u00fc\u00dfe\r\n\r\nhallo\r\n".encode()
    done = w.command("A", b'APPEND "' + name + b'" UTF8 (' + lit(msg, binary=True) + b")")
    assert done[-1].startswith(b"A OK [APPENDUID"), done
    w.command("S", b'SELECT "' + name + b'"')
    got = w.command("F", b"FETCH 1 BODY.PEEK[]")
    assert got[0].endswith(msg + b")")
    # "&" is an ordinary character now (it would start a modified UTF-7 shift otherwise)
    assert w.command("C", b'CREATE "R&D"')[-1].startswith(b"C OK")
    assert w.command("L", b'LIST "" "R*"')[0] == b'* LIST (\\HasNoChildren) "/" R&D'
    # a session that did not enable it sees modified UTF-7, and may not send UTF8 data
    v = client(srv)
    assert v.command("L", b'LIST "" "Entw*"')[0] == b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe'
    assert v.command("L", b'LIST "" "R*"')[0] == b'* LIST (\\HasNoChildren) "/" R&-D'
    done = v.command("A", b"APPEND INBOX UTF8 (" + lit(msg, binary=True) + b")")
    assert done[-1].startswith(b"A BAD"), done
    v.close()
    w.close()


def test_imap4rev2_differences(srv: MailwingServer) -> None:
    w = client(srv)
    for i in range(3):
        w.command("A", b"APPEND INBOX " + lit(simple(f"m{i}")))
    assert w.command("E", b"ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2", b"E OK Enabled"]
    got = w.command("S", b"SELECT INBOX")
    assert b"* 3 EXISTS" in got and b'* LIST () "/" INBOX' in got
    assert not any(b"RECENT" in line or b"UNSEEN" in line for line in got), got
    got = w.command("F", b"FETCH 1:3 FLAGS")
    assert got[:3] == [b"* 1 FETCH (FLAGS ())", b"* 2 FETCH (FLAGS ())", b"* 3 FETCH (FLAGS ())"]
    assert w.command("Q", b"SEARCH ALL") == [b'* ESEARCH (TAG "Q") ALL 1:3',
                                             b"Q OK SEARCH completed"]
    got = w.command("Q", b"UID SEARCH RETURN (MIN MAX COUNT) 2:3")
    assert got[0] == b'* ESEARCH (TAG "Q") UID MIN 2 MAX 3 COUNT 2', got
    got = w.command("Q", b"SEARCH SUBJECT nothing-matches")
    assert got[0] == b'* ESEARCH (TAG "Q")', got
    # new mail from elsewhere: EXISTS, no RECENT, no \Recent
    v = client(srv)
    v.command("A", b"APPEND INBOX " + lit(simple("late")))
    v.close()
    got = w.command("N", b"NOOP")
    assert b"* 4 EXISTS" in got and not any(b"RECENT" in line for line in got), got
    assert w.command("F", b"FETCH 4 FLAGS")[0] == b"* 4 FETCH (FLAGS ())"
    got = w.command("S", b"EXAMINE Sent")
    assert got[0].startswith(b"* OK [CLOSED] "), got
    assert b'* LIST (\\Sent) "/" Sent' in got
    w.close()
    # a plain IMAP4rev1 session is unchanged (the IMAP4rev2 session's SELECT claimed the
    # \Recent state, as any session's does: nothing is recent any more)
    r = client(srv)
    got = r.command("S", b"SELECT INBOX")
    assert b"* 0 RECENT" in got and b"* OK [UNSEEN 1] First unseen message" in got
    assert r.command("Q", b"SEARCH ALL")[0] == b"* SEARCH 1 2 3 4"
    r.close()
