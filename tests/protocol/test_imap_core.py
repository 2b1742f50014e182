"""IMAP core behaviour against a real ``mailwing serve`` on every backend, with imaplib
(RFC 3501, UIDPLUS, MOVE, two sessions on one mailbox)."""

from __future__ import annotations

import imaplib
import re
from pathlib import Path

import pytest

from mailwing.proto.imap.extensions import SEARCH_EXTENSIONS
from tests.protocol.test_imap_support import MULTIPART, connect, ok, simple, start
from tests.support import MailwingServer

_SEARCH = " ".join(SEARCH_EXTENSIONS)
_APPEND_CAPS = ("MULTIAPPEND CATENATE BINARY QUOTA QUOTA=RES-STORAGE UTF8=ACCEPT "
                "COMPRESS=DEFLATE APPENDLIMIT=52428800")
CAPS_BEFORE = ("IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT "
               f"UIDPLUS MOVE SPECIAL-USE CHILDREN CONDSTORE QRESYNC {_SEARCH} {_APPEND_CAPS} "
               "STARTTLS AUTH=PLAIN")
CAPS_AFTER = ("IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT "
              f"UIDPLUS MOVE SPECIAL-USE CHILDREN CONDSTORE QRESYNC {_SEARCH} {_APPEND_CAPS}")


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url)


def test_greeting_capabilities_login_logout(srv: MailwingServer) -> None:
    c = connect(srv, login=False)
    assert c.welcome == (b"* OK [CAPABILITY " + CAPS_BEFORE.encode()
                         + b"] mailwing IMAP4rev1 ready")
    assert ok(c.capability()) == [CAPS_BEFORE.encode()]
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login("alice@example.test", "wrong")
    typ, data = c.login("alice@example.test", "correct horse battery staple")
    assert typ == "OK" and data == [b"[CAPABILITY " + CAPS_AFTER.encode() + b"] LOGIN completed"]
    assert ok(c.capability())[-1] == CAPS_AFTER.encode()
    typ, _ = c.logout()
    assert typ == "BYE"


def test_select_examine_append_fetch_store(srv: MailwingServer) -> None:
    c = connect(srv)
    data = ok(c.append("INBOX", r"(\Seen \Flagged $Work)", '"02-Jan-2026 10:00:00 +0100"',
                       MULTIPART))
    assert re.fullmatch(rb"\[APPENDUID \d+ 1\] APPEND completed", data[0])
    ok(c.append("INBOX", "", None, simple("second")))
    assert ok(c.select("INBOX")) == [b"2"]
    r = c.untagged_responses
    assert r["FLAGS"] == [rb"(\Answered \Flagged \Deleted \Seen \Draft $Work)"]
    assert r["RECENT"] == [b"2"] and r["UNSEEN"] == [b"2"] and r["UIDNEXT"] == [b"3"]
    assert r["PERMANENTFLAGS"] == [rb"(\Answered \Flagged \Deleted \Seen \Draft $Work \*)"]
    assert "READ-WRITE" in r

    data = ok(c.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE)"))
    assert data == [b'1 (UID 1 FLAGS ($Work \\Flagged \\Recent \\Seen) '
                    b'INTERNALDATE "02-Jan-2026 09:00:00 +0000" RFC822.SIZE %d)'  # kept in UTC
                    % len(MULTIPART)]
    # BODY.PEEK does not set \Seen; BODY[] does, and reports FLAGS in the same response
    data = ok(c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert data[0][1] == b"Subject: second\r\n\r\n"
    assert b"Seen" not in ok(c.fetch("2", "FLAGS"))[0]
    data = ok(c.fetch("2", "(BODY[TEXT])"))
    assert data[0][1] == b"hello world\r\n" and b"\\Seen" in data[1]
    data = ok(c.store("1:2", "-FLAGS", r"(\Seen)"))
    assert data == [b"1 (FLAGS ($Work \\Flagged \\Recent))", b"2 (FLAGS (\\Recent))"]
    assert ok(c.store("2", "+FLAGS.SILENT", r"(\Deleted)")) == [None]

    # a second session: EXAMINE does not claim \Recent and is read-only
    d = connect(srv)
    ok(d.select("INBOX", readonly=True))
    assert d.untagged_responses["RECENT"] == [b"0"]
    assert "READ-ONLY" in d.untagged_responses
    typ, data = d.store("1", "+FLAGS", r"(\Seen)")
    assert typ == "NO"
    d.logout()

    assert ok(c.expunge()) == [b"2"]
    c.logout()


def test_copy_move_uid_expunge_and_two_sessions(srv: MailwingServer) -> None:
    a, b = connect(srv), connect(srv)
    for i in range(4):
        ok(a.append("INBOX", "", None, simple(f"m{i}")))
    ok(a.select("INBOX"))
    ok(b.select("INBOX"))
    ok(a.uid("COPY", "1:2", "Archive"))
    assert re.fullmatch(rb"\d+ 1:2 1:2", a.response("COPYUID")[1][0])
    typ, data = a.uid("COPY", "1", "Nope")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    ok(a.uid("MOVE", "3", "Trash"))
    assert re.fullmatch(rb"\d+ 3 1", a.response("COPYUID")[1][0])
    assert a.response("EXPUNGE")[1] == [b"3"]
    ok(a.uid("STORE", "1,2", "+FLAGS", r"(\Deleted)"))
    ok(a.uid("EXPUNGE", "2"))  # UID 1 is \Deleted too but not named
    assert a.response("EXPUNGE")[1] == [b"2"]
    # b learns about the MOVE and the expunge on NOOP, and about new mail
    ok(a.append("INBOX", "", None, simple("new")))
    ok(b.noop())
    assert b.untagged_responses["EXPUNGE"] == [b"2", b"2"]  # UIDs 2 and 3, in turn
    assert b.untagged_responses["EXISTS"][-1] == b"3"
    assert ok(b.uid("SEARCH", "ALL")) == [b"1 4 5"]
    assert ok(b.search(None, "DELETED")) == [b"1"]
    a.logout()
    b.logout()
