"""ESEARCH (RFC 4731), SEARCHRES (RFC 5182), SORT/THREAD (RFC 5256), ESORT (RFC 5267),
SORT=DISPLAY (RFC 5957) and WITHIN (RFC 5032) over real sockets, on both backends, with
imaplib (raw lines) and imapclient's own search/sort/thread calls."""

from __future__ import annotations

from pathlib import Path

import imapclient
import pytest

from tests.protocol.test_imap_support import PASSWORD, USER, Raw, connect, ok, start
from tests.support import MailwingServer


def msg(subject: str, sender: str, to: str, date: str, *, mid: str = "", refs: str = "",
        body: str = "x") -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
    if mid:
        head += f"Message-ID: <{mid}>\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    return (head + "\r\n" + body + "\r\n").encode()


# (message, internal date): sequence numbers 1..6
MAILBOX = [
    (msg("Hello", "Zed <zed@example.test>", "amy@example.test",
         "Mon, 05 Jan 2026 10:00:00 +0000", mid="a@x", body="a" * 10),
     '"01-Jan-2020 00:00:00 +0000"'),
    (msg("Re: hello", "Bob Brown <bob@example.test>", "Carl <carl@example.test>",
         "Mon, 05 Jan 2026 09:00:00 -0300", mid="b@x", refs="<a@x>", body="b" * 300),
     '"02-Jan-2020 00:00:00 +0000"'),
    (msg("[list] Other topic", "amy@example.test", "zed@example.test",
         "Sun, 04 Jan 2026 08:00:00 +0000", mid="c@x", body="c" * 50),
     '"03-Jan-2020 00:00:00 +0000"'),
    (msg("RE: Re: Hello (fwd)", "carl@example.test", "bob@example.test",
         "Tue, 06 Jan 2026 08:00:00 +0000", mid="d@x", refs="<a@x> <b@x>", body="d"),
     '"04-Jan-2020 00:00:00 +0000"'),
    (msg("other TOPIC", "Ann <yann@example.test>", "amy@example.test",
         "not a date", mid="e@x", body="e" * 20),
     '"05-Jan-2020 00:00:00 +0000"'),
    (msg("Fwd: unrelated", "bob@example.test", "amy@example.test",
         "Wed, 07 Jan 2026 08:00:00 +0000", mid="f@x", refs="<missing@x>", body="f" * 5),
     None),  # internal date: now
]


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    srv = start(server_factory, tmp_path, database_url)
    c = connect(srv)
    for raw, date in MAILBOX:
        if date is None:
            ok(c.append("INBOX", r"(\Seen)", None, raw))
        else:
            ok(c.append("INBOX", "", date, raw))
    c.logout()
    return srv


def raw_session(srv: MailwingServer) -> Raw:
    r = Raw(srv.ports["imap"])
    r.command(f'l LOGIN {USER} "{PASSWORD}"'.encode())
    assert r.command(b"s SELECT INBOX")[-1].startswith(b"s OK")
    return r


def test_capabilities_advertised(srv: MailwingServer) -> None:
    caps = connect(srv).capabilities
    for cap in ("ESEARCH", "SEARCHRES", "SORT", "SORT=DISPLAY", "ESORT",
                "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "WITHIN"):
        assert cap in caps
    assert "CONTEXT=SORT" not in caps


def test_esearch_return_options(srv: MailwingServer) -> None:
    r = raw_session(srv)
    assert r.command(b"a SEARCH RETURN (MIN MAX COUNT ALL) NOT SEEN") == [
        b'* ESEARCH (TAG "a") MIN 1 MAX 5 ALL 1:5 COUNT 5', b"a OK SEARCH completed"]
    assert r.command(b"b UID SEARCH RETURN (COUNT) SEEN")[0] == b'* ESEARCH (TAG "b") UID COUNT 1'
    assert r.command(b"c SEARCH RETURN () OR 2 4")[0] == b'* ESEARCH (TAG "c") ALL 2,4'
    # nothing found: MIN/MAX/ALL are left out, COUNT is 0
    assert r.command(b"d SEARCH RETURN (MIN MAX ALL COUNT) DELETED")[0] == (
        b'* ESEARCH (TAG "d") COUNT 0')
    assert r.command(b"e SEARCH RETURN (BOGUS) ALL")[-1].startswith(b"e BAD")
    assert r.command(b"f SEARCH SEEN")[0] == b"* SEARCH 6"  # no RETURN: plain SEARCH


def test_searchres_save_and_dollar(srv: MailwingServer) -> None:
    r = raw_session(srv)
    # SAVE alone: no ESEARCH response, then $ works in SEARCH, FETCH, STORE, COPY
    assert r.command(b"a SEARCH RETURN (SAVE) SUBJECT hello") == [b"a OK SEARCH completed"]
    assert r.command(b"b SEARCH $")[0] == b"* SEARCH 1 2 4"
    assert r.command(b"c UID SEARCH UID $ NOT 1")[0].startswith(b"* SEARCH 2 4")
    got = r.command(b"d FETCH $ (UID)")
    assert [line.split(b" ")[1] for line in got[:-1]] == [b"1", b"2", b"4"]
    assert r.command(b"e STORE $ +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"e OK")
    assert r.command(b"f SEARCH FLAGGED")[0] == b"* SEARCH 1 2 4"
    assert r.command(b"g UID COPY $ Archive")[-1].startswith(b"g OK [COPYUID")
    # SAVE MIN MAX keeps only those two; combined with ALL, every match
    r.command(b"h SEARCH RETURN (SAVE MIN MAX) ALL")
    assert r.command(b"i SEARCH $")[0] == b"* SEARCH 1 6"
    assert r.command(b"j UID SEARCH RETURN (SAVE COUNT) 2:3")[0] == (
        b'* ESEARCH (TAG "j") UID COUNT 2')
    assert r.command(b"k FETCH $ (FLAGS)")[0].startswith(b"* 2 FETCH")
    # an expunged message drops out of $
    r.command(b"l STORE 2 +FLAGS.SILENT (\\Deleted)")
    r.command(b"m EXPUNGE")
    assert r.command(b"n SEARCH $")[0] == b"* SEARCH 2"  # old 3 is now 2
    # reset by SELECT: $ is empty
    r.command(b"o SELECT INBOX")
    assert r.command(b"p SEARCH $")[0] == b"* SEARCH"
    assert r.command(b"q FETCH $ (UID)") == [b"q OK FETCH completed"]
    # $ is a set on its own, never mixed
    assert r.command(b"r FETCH $,1 (UID)")[-1].startswith(b"r BAD")
    # a SAVE search that fails, even with BAD, empties $ (RFC 5182 section 2.1)
    r.command(b"s SEARCH RETURN (SAVE) ALL")
    assert r.command(b"t SEARCH $")[0] == b"* SEARCH 1 2 3 4 5"
    assert r.command(b"u SEARCH RETURN (SAVE) BOGUS")[-1].startswith(b"u BAD")
    assert r.command(b"v SEARCH $")[0] == b"* SEARCH"


def test_sort_keys(srv: MailwingServer) -> None:
    r = raw_session(srv)

    def sort(criteria: str, uid: bool = False) -> bytes:
        cmd = ("UID SORT" if uid else "SORT") + f" ({criteria}) UTF-8 ALL"
        return r.command(b"t " + cmd.encode())[0]

    assert sort("ARRIVAL") == b"* SORT 1 2 3 4 5 6"
    assert sort("REVERSE ARRIVAL") == b"* SORT 6 5 4 3 2 1"
    # DATE in UTC; message 5's unparsable Date: falls back to the (2020) internal date
    assert sort("DATE") == b"* SORT 5 3 1 2 4 6"
    assert sort("SIZE") == b"* SORT 5 1 6 4 3 2"
    # base subjects: hello hello topic hello topic unrelated -> ties by sequence
    assert sort("SUBJECT") == b"* SORT 1 2 4 3 5 6"
    assert sort("SUBJECT REVERSE DATE") == b"* SORT 4 2 1 3 5 6"
    # FROM: local parts amy bob carl yann zed
    assert sort("FROM") == b"* SORT 3 2 6 4 5 1"
    assert sort("TO") == b"* SORT 1 5 6 4 2 3"  # amy amy amy bob carl zed
    assert sort("CC") == b"* SORT 1 2 3 4 5 6"  # no Cc anywhere: sequence order
    # DISPLAYFROM: display names "Zed", "Bob Brown", "amy@...", "carl@...", "Ann", "bob@..."
    assert sort("DISPLAYFROM") == b"* SORT 3 5 2 6 4 1"
    assert sort("REVERSE SIZE", uid=True) == b"* SORT 2 3 4 6 1 5"
    assert r.command(b"u SORT (BOGUS) UTF-8 ALL")[-1].startswith(b"u BAD")
    assert r.command(b"v SORT (REVERSE) UTF-8 ALL")[-1].startswith(b"v BAD")
    assert b"BADCHARSET" in r.command(b"w SORT (SIZE) KOI8-R ALL")[-1]


def test_esort(srv: MailwingServer) -> None:
    r = raw_session(srv)
    assert r.command(b"a SORT RETURN (MIN MAX COUNT ALL) (SIZE) UTF-8 ALL")[0] == (
        b'* ESEARCH (TAG "a") MIN 5 MAX 2 ALL 5,1,6,4,3,2 COUNT 6')
    assert r.command(b"b UID SORT RETURN (SAVE MIN) (REVERSE SIZE) UTF-8 ALL") == [
        b'* ESEARCH (TAG "b") UID MIN 2', b"b OK UID SORT completed"]
    assert r.command(b"c SEARCH $")[0] == b"* SEARCH 2"


def test_thread(srv: MailwingServer) -> None:
    r = raw_session(srv)
    # ORDEREDSUBJECT: groups by base subject, ordered by the first message's sent date
    assert r.command(b"a THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == (
        b"* THREAD (5 3)(1 (2)(4))(6)")
    # REFERENCES: 1 <- 2 <- 4 by References; 3 and 5 share a base subject; 6's parent is
    # missing (a pruned dummy)
    assert r.command(b"b THREAD REFERENCES UTF-8 ALL")[0] == (
        b"* THREAD ((5)(3))(1 2 4)(6)")
    assert r.command(b"c UID THREAD REFERENCES UTF-8 NOT 2")[0] == (
        b"* THREAD ((5)(3))(1 4)(6)")
    assert r.command(b"d THREAD BOGUS UTF-8 ALL")[-1].startswith(b"d BAD")


def test_within(srv: MailwingServer) -> None:
    r = raw_session(srv)
    assert r.command(b"a SEARCH YOUNGER 86400")[0] == b"* SEARCH 6"
    assert r.command(b"b SEARCH OLDER 86400")[0] == b"* SEARCH 1 2 3 4 5"
    assert r.command(b"c SEARCH OLDER 0")[-1].startswith(b"c BAD")


def test_imapclient_calls(srv: MailwingServer) -> None:
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30)
    client.login(USER, PASSWORD)
    client.select_folder("INBOX")
    assert client.search(["SUBJECT", "hello"]) == [1, 2, 4]
    assert client.sort(["REVERSE SIZE"], ["NOT", "SEEN"]) == [2, 3, 4, 1, 5]
    assert client.thread("REFERENCES") == (((5,), (3,)), (1, 2, 4), (6,))
    threads = client.thread("ORDEREDSUBJECT")
    assert threads[0] == (5, 3)
    got = client._imap._simple_command("SEARCH", "RETURN", "(COUNT)", "ALL")
    assert got[0] == "OK"
    client.logout()
