"""Encoding of responses (RFC 3501 sections 4, 7 and 9), states and capabilities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses as r
from mailwing.proto.imap import wire
from mailwing.proto.imap.capabilities import capabilities
from mailwing.proto.imap.grammar import Cursor
from mailwing.proto.imap.responses import Code, LiteralBody
from mailwing.proto.imap.states import ALLOWED, State, allowed


def test_quoted_and_literal() -> None:
    assert wire.quoted("a b") == b'"a b"'
    assert wire.quoted('say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    assert wire.quoted("a\r\nb") == b"{4}\r\na\r\nb"
    assert wire.quoted("ü") == b"{2}\r\n\xc3\xbc"
    assert wire.quoted(b"x\x00") == b"{2}\r\nx\x00"
    assert wire.literal(b"") == b"{0}\r\n"
    assert wire.nstring(None) == b"NIL" and wire.nstring("") == b'""'
    assert wire.astring("INBOX") == b"INBOX" and wire.astring("a b") == b'"a b"'
    assert wire.astring("nil") == b'"nil"' and wire.astring("") == b'""'


@given(st.binary(max_size=60))
def test_quoted_parses_back(raw: bytes) -> None:
    encoded = wire.quoted(raw)
    if encoded.startswith(b"{"):
        head, _, body = encoded.partition(b"\r\n")
        cur = Cursor([head, body, b""])
    else:
        cur = Cursor([encoded])
    assert cur.string() == raw and cur.at_end()


def test_encode_sexp() -> None:
    envelope = ["Mon, 7 Feb 1994 21:52:25 -0800", "Hi \"there\"",
                [["Terry", None, "gray", "example.com"]], None, 0, b"\xff"]
    assert wire.encode_sexp(envelope) == (
        b'("Mon, 7 Feb 1994 21:52:25 -0800" "Hi \\"there\\"" (("Terry" NIL "gray" '
        b'"example.com")) NIL 0 {1}\r\n\xff)')
    assert wire.encode_sexp([wire.Atom("\\Seen"), wire.Raw(b"{1}\r\nx"), ()]) == (
        b"(\\Seen {1}\r\nx ())")
    assert wire.encode_sexp(datetime(2024, 2, 7, 1, 2, 3, tzinfo=UTC)) == (
        b'"07-Feb-2024 01:02:03 +0000"')
    with pytest.raises(TypeError):
        wire.encode_sexp(True)
    with pytest.raises(TypeError):
        wire.encode_sexp(object())


def test_mailbox_flags_dates() -> None:
    assert wire.encode_mailbox("Entwürfe") == b"Entw&APw-rfe"
    assert wire.encode_mailbox("My Mail") == b'"My Mail"'
    assert wire.flag_list(["\\Seen", "$Label"]) == b"(\\Seen $Label)"
    tz = timezone(-timedelta(hours=8))
    assert wire.format_datetime(datetime(1996, 7, 17, 2, 44, 25, tzinfo=tz)) == (
        "17-Jul-1996 02:44:25 -0800")
    assert wire.format_datetime(datetime(2001, 1, 2, 3, 4, 5)) == "02-Jan-2001 03:04:05 +0000"


def test_status_responses_and_codes() -> None:
    assert r.ok("a1", "APPEND completed", Code.appenduid(38505, 3955)) == (
        b"a1 OK [APPENDUID 38505 3955] APPEND completed\r\n")
    assert r.ok("a", "done", Code.copyuid(9, [1, 2, 3, 7], [10, 11, 12, 13])) == (
        b"a OK [COPYUID 9 1:3,7 10:13] done\r\n")
    assert r.no("a", "x", Code.TRYCREATE) == b"a NO [TRYCREATE] x\r\n"
    assert r.bad("*", "oops") == b"* BAD oops\r\n"
    assert r.ok("*", "Flags", Code.permanentflags(["\\Seen", "\\*"])) == (
        b"* OK [PERMANENTFLAGS (\\Seen \\*)] Flags\r\n")
    assert r.ok("*", "x", Code.uidvalidity(3)) == b"* OK [UIDVALIDITY 3] x\r\n"
    assert r.ok("*", "x", Code.uidnext(4)) == b"* OK [UIDNEXT 4] x\r\n"
    assert r.ok("*", "x", Code.highestmodseq(5)) == b"* OK [HIGHESTMODSEQ 5] x\r\n"
    assert r.ok("a", "x", Code.capability(["IMAP4rev1", "IDLE"])) == (
        b"a OK [CAPABILITY IMAP4rev1 IDLE] x\r\n")
    assert r.bye("Logging out") == b"* BYE Logging out\r\n"
    assert r.ok("*", "hi", Code.ALERT) == b"* OK [ALERT] hi\r\n"
    assert r.continuation("idling") == b"+ idling\r\n" and r.continuation() == b"+ \r\n"


def test_untagged_data() -> None:
    assert r.exists(3) == b"* 3 EXISTS\r\n" and r.expunge(2) == b"* 2 EXPUNGE\r\n"
    assert r.recent(0) == b"* 0 RECENT\r\n"
    assert r.flags(["\\Seen", "\\Deleted"]) == b"* FLAGS (\\Seen \\Deleted)\r\n"
    assert r.list_response(["\\HasNoChildren", "\\Sent"], "/", "Gesendete Elemente") == (
        b'* LIST (\\HasNoChildren \\Sent) "/" "Gesendete Elemente"\r\n')
    assert r.list_response([], None, "INBOX", "LSUB") == b"* LSUB () NIL INBOX\r\n"
    assert r.status("台北", {"MESSAGES": 2, "UIDNEXT": 5}) == (
        b"* STATUS &U,BTFw- (MESSAGES 2 UIDNEXT 5)\r\n")
    assert r.search([]) == b"* SEARCH\r\n" and r.search([1, 4]) == b"* SEARCH 1 4\r\n"
    assert r.capability(["IMAP4rev1"]) == b"* CAPABILITY IMAP4rev1\r\n"
    assert r.namespace() == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    assert r.enabled([]) == b"* ENABLED\r\n"
    assert r.id_response({"name": "mailwing", "version": None}) == (
        b'* ID ("name" "mailwing" "version" NIL)\r\n')
    assert r.id_response(None) == b"* ID NIL\r\n"
    assert r.untagged("OK still here") == b"* OK still here\r\n"


def test_fetch_responses_and_streaming() -> None:
    assert r.fetch(12, [("UID", b"7"), ("FLAGS", wire.flag_list(["\\Seen"]))]) == (
        b"* 12 FETCH (UID 7 FLAGS (\\Seen))\r\n")
    body = LiteralBody(25_000_000, source="blob-id")
    segs = r.fetch_segments(1, [("UID", b"9"), ("BODY[]", body), ("FLAGS", b"()")])
    assert segs == [b"* 1 FETCH (UID 9 BODY[] {25000000}\r\n", body, b" FLAGS ())\r\n"]


def test_state_table() -> None:
    assert allowed(State.NOT_AUTHENTICATED, c.Login("a", "u", "p"))
    assert not allowed(State.NOT_AUTHENTICATED, c.Select("a", "INBOX"))
    assert allowed(State.AUTHENTICATED, c.Enable)
    assert not allowed(State.SELECTED, c.Enable)
    assert not allowed(State.AUTHENTICATED, c.Fetch)
    assert allowed(State.SELECTED, c.Move) and allowed(State.SELECTED, c.Idle)
    assert not allowed(State.SELECTED, c.StartTls) and not allowed(State.SELECTED, c.Login)
    for state in State:
        assert allowed(state, c.Capability) == (state is not State.LOGOUT)
    everything = set().union(*ALLOWED.values())
    assert everything == {cls for cls in vars(c).values()
                          if isinstance(cls, type) and issubclass(cls, c.Command)
                          and cls is not c.Command}


def test_capabilities() -> None:
    plain = capabilities(tls_active=False, plaintext_allowed=False, authenticated=False)
    assert "STARTTLS" in plain and "LOGINDISABLED" in plain and "AUTH=PLAIN" not in plain
    open_ = capabilities(tls_active=False, plaintext_allowed=True, authenticated=False)
    assert "AUTH=PLAIN" in open_ and "LOGINDISABLED" not in open_
    tls = capabilities(tls_active=True, plaintext_allowed=False, authenticated=False)
    assert "STARTTLS" not in tls and "AUTH=PLAIN" in tls
    after = capabilities(tls_active=True, plaintext_allowed=False, authenticated=True)
    assert after[0] == "IMAP4rev1" and not any(x.startswith("AUTH=") for x in after)
    for cap in ("LITERAL+", "SASL-IR", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "ENABLE",
                "ID", "NAMESPACE", "UNSELECT", "CHILDREN"):
        assert cap in after
