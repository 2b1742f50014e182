"""Parsing of every IMAP command (RFC 3501 section 6 + extensions), through the reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import search as s
from mailwing.proto.imap.events import CommandReceived, ProtocolError
from mailwing.proto.imap.fetchitems import FetchItem, Section
from mailwing.proto.imap.parser import UNDECODABLE
from mailwing.proto.imap.reader import ImapReader
from mailwing.proto.imap.seqset import SequenceSet


def events(data: bytes, **limits: int) -> list[object]:
    reader = ImapReader(**limits)
    reader.receive_data(data)
    out = []
    while type(ev := reader.next_event()).__name__ != "NeedData":
        out.append(ev)
    return out


def cmd(line: str | bytes) -> c.Command:
    raw = line.encode() if isinstance(line, str) else line
    evs = [e for e in events(raw + b"\r\n") if type(e).__name__ != "SendContinuation"]
    assert len(evs) == 1 and isinstance(evs[0], CommandReceived), evs
    return evs[0].command


def err(line: str | bytes) -> ProtocolError:
    raw = line.encode() if isinstance(line, str) else line
    evs = [e for e in events(raw + b"\r\n") if type(e).__name__ != "SendContinuation"]
    assert len(evs) == 1 and isinstance(evs[0], ProtocolError), evs
    return evs[0]


@pytest.mark.parametrize(("line", "cls"), [
    ("a CAPABILITY", c.Capability), ("a noop", c.Noop), ("a LOGOUT", c.Logout),
    ("a STARTTLS", c.StartTls), ("a CHECK", c.Check), ("a CLOSE", c.Close),
    ("a UNSELECT", c.Unselect), ("a IDLE", c.Idle), ("a NAMESPACE", c.Namespace),
])
def test_commands_without_arguments(line: str, cls: type) -> None:
    command = cmd(line)
    assert type(command) is cls and command.tag == "a"
    assert err(line + " extra").text.startswith("Syntax error")


def test_login_atom_quoted_literal() -> None:
    assert cmd("A1 LOGIN bob secret") == c.Login("A1", "bob", "secret")
    assert cmd(r'A1 LOGIN "bob smith" "p\"a\\ss"') == c.Login("A1", "bob smith", 'p"a\\ss')
    assert cmd(b"A1 LOGIN {3}\r\nbob {4+}\r\npass") == c.Login("A1", "bob", "pass")
    assert cmd("A1 LOGIN \"j\xc3\xbcrgen\" x".encode("latin-1")).username == "jürgen"
    assert "secret" not in repr(cmd("A1 LOGIN bob secret"))


def test_login_errors() -> None:
    assert err("A1 LOGIN bob").tag == "A1"
    assert err(r'A1 LOGIN "bob x').text.endswith("unterminated quoted string")
    assert err(r'A1 LOGIN "b\x" y').text.endswith("invalid escape in quoted string")


def test_authenticate_with_and_without_initial_response() -> None:
    assert cmd("a AUTHENTICATE plain") == c.Authenticate("a", "PLAIN", None)
    assert cmd("a AUTHENTICATE PLAIN AGJvYgBwdw==").initial_response == b"\x00bob\x00pw"
    assert cmd("a AUTHENTICATE PLAIN =").initial_response == b""
    assert err("a AUTHENTICATE PLAIN !!!!").tag == "a"


def test_select_examine_inbox_normalised_and_utf7() -> None:
    assert cmd("a SELECT inbox") == c.Select("a", "INBOX")
    assert cmd('a EXAMINE "InBoX"') == c.Select("a", "INBOX", readonly=True)
    assert cmd("a SELECT Entw&APw-rfe").mailbox == "Entwürfe"
    assert cmd("a SELECT INBOX (CONDSTORE)").condstore
    assert cmd("a SELECT INBOX.Sub").mailbox == "INBOX.Sub"
    # not modified UTF-7: parsed (the server answers NO, not BAD), but it names no mailbox
    assert cmd("a SELECT &Jjo").mailbox == UNDECODABLE + "&Jjo"
    assert cmd('a SELECT "Entw\xc3\xbcrfe"'.encode("latin-1")).mailbox == "Entwürfe"


def test_mailbox_management() -> None:
    assert cmd("a CREATE Archive") == c.Create("a", "Archive", ())
    assert cmd(r"a CREATE Sent (USE (\Sent))") == c.Create("a", "Sent", ("\\Sent",))
    assert cmd("a DELETE {3}\r\nfoo") == c.Delete("a", "foo")
    assert cmd('a RENAME "a b" c') == c.Rename("a", "a b", "c")
    assert cmd("a SUBSCRIBE x") == c.Subscribe("a", "x")
    assert cmd("a UNSUBSCRIBE x") == c.Unsubscribe("a", "x")
    assert err("a CREATE x (USE (Sent))").text == "Unsupported CREATE parameter"


def test_list_and_lsub() -> None:
    assert cmd('a LIST "" *') == c.List("a", "", ("*",))
    assert cmd('a LIST "" %/&U,BTFw-') .patterns == ("%/台北",)
    ext = cmd('a LIST (SPECIAL-USE) "" ("*" INBOX) RETURN (SPECIAL-USE)')
    assert isinstance(ext, c.List) and ext.extended
    assert ext.select_options == ("SPECIAL-USE",) and ext.return_options == ("SPECIAL-USE",)
    assert ext.patterns == ("*", "INBOX")
    assert cmd('a LIST "" "*" RETURN (SPECIAL-USE)').return_options == ("SPECIAL-USE",)
    assert cmd("a LSUB Foo %") == c.Lsub("a", "Foo", "%")


def test_status() -> None:
    assert cmd("a STATUS INBOX (MESSAGES unseen UIDNEXT)") == c.Status(
        "a", "INBOX", ("MESSAGES", "UNSEEN", "UIDNEXT"))
    assert err("a STATUS INBOX (BOGUS)").text == "Invalid STATUS item"
    assert err("a STATUS INBOX ()").text == "Invalid STATUS item"


def test_append_variants() -> None:
    plain = cmd(b"a APPEND INBOX {5}\r\nhello")
    assert plain == c.Append("a", "INBOX", (), None, b"hello")
    full = cmd(b'a APPEND Sent (\\seen $Label) " 7-Feb-2024 13:05:06 -0130" {3+}\r\nabc')
    assert isinstance(full, c.Append)
    assert full.flags == ("\\Seen", "$Label")
    assert full.internal_date == datetime(2024, 2, 7, 13, 5, 6,
                                          tzinfo=timezone(-timedelta(hours=1, minutes=30)))
    utc = cmd(b'a APPEND x "01-Jan-2020 00:00:00 +0000" {0}\r\n')
    assert isinstance(utc, c.Append) and utc.internal_date == datetime(2020, 1, 1, tzinfo=UTC)
    assert utc.message == b""
    assert err("a APPEND x hello").text == "APPEND message must be a literal"
    assert err(b'a APPEND x "32-Jan-2020 00:00:00 +0000" {1+}\r\nx').text.endswith("date-time")
    assert "octets" in repr(plain)


def test_expunge_and_uid_expunge() -> None:
    assert cmd("a EXPUNGE") == c.Expunge("a")
    uid = cmd("a UID EXPUNGE 3:5")
    assert uid == c.Expunge("a", SequenceSet.parse("3:5")) and uid.uid


def test_fetch() -> None:
    f = cmd("a FETCH 1:* ALL")
    assert isinstance(f, c.Fetch) and not f.uid
    assert [i.name for i in f.items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    u = cmd("a UID fetch 5 (UID body[1.2.MIME] RFC822.HEADER) (CHANGEDSINCE 12345)")
    assert isinstance(u, c.Fetch) and u.uid and u.changed_since == 12345
    assert u.items[1] == FetchItem("BODY", Section((1, 2), "MIME"))
    assert err("a FETCH 1 (FLAGS").tag == "a"
    assert err("a FETCH 0 FLAGS").text == "Syntax error: invalid sequence set"
    assert err("a FETCH 1 BODY[1.MIME.X]").text == "Syntax error: invalid body section"


def test_store() -> None:
    st = cmd(r"a STORE 1:2 +FLAGS.SILENT (\Deleted \seen)")
    assert st == c.Store("a", SequenceSet.parse("1:2"), "+", True, ("\\Deleted", "\\Seen"))
    assert cmd(r"a UID STORE 4 -FLAGS \Flagged foo").flags == ("\\Flagged", "foo")
    assert cmd("a STORE 1 FLAGS ()").flags == ()
    assert cmd(r"a STORE 1 (UNCHANGEDSINCE 7) FLAGS (\Seen)").unchanged_since == 7
    assert err("a STORE 1 +LABELS (x)").text == "Invalid STORE item"


def test_copy_move() -> None:
    assert cmd("a COPY 1:3 Trash") == c.Copy("a", SequenceSet.parse("1:3"), "Trash")
    assert cmd('a UID MOVE 7,9 "Archive 2024"') == c.Move(
        "a", SequenceSet.parse("7,9"), "Archive 2024", True)


def test_search_command() -> None:
    se = cmd("a UID SEARCH CHARSET utf-8 FROM {5}\r\nJ\xc3\xbcrg UNSEEN".encode("latin-1"))
    assert isinstance(se, c.Search) and se.uid and se.charset == "UTF-8"
    assert se.criteria == s.And((s.Contains("FROM", "Jürg"), s.Flag("\\Seen", False)))
    bad = err("a SEARCH CHARSET KOI8-R ALL")
    assert bad.code == "BADCHARSET (UTF-8 US-ASCII)"
    assert bad.response() == b"a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n"
    assert cmd("a SEARCH RETURN (MIN COUNT) ALL").return_options == ("MIN", "COUNT")


def test_enable_id_unknown() -> None:
    assert cmd("a ENABLE CONDSTORE utf8=accept") == c.Enable("a", ("CONDSTORE", "UTF8=ACCEPT"))
    assert cmd("a ID NIL") == c.Id("a", None)
    ident = cmd('a ID ("name" "Thunderbird" "version" NIL)')
    assert ident == c.Id("a", {"name": "Thunderbird", "version": None})
    assert cmd("a ID ()") == c.Id("a", {})
    assert err("a FROB").text == "Unknown command"
    assert err("a UID COPYX 1 x").text == "Unknown command"
    assert err("+a NOOP").tag is None
