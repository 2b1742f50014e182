"""Framing: lines, literals (RFC 3501 7.5, RFC 7888 LITERAL+), limits, garbage, splits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwing.proto.imap import commands as c
from mailwing.proto.imap.events import (
    CommandReceived,
    LineReceived,
    NeedData,
    ProtocolError,
    SendContinuation,
)
from mailwing.proto.imap.reader import ImapReader


def drain(reader: ImapReader) -> list[object]:
    out = []
    while not isinstance(ev := reader.next_event(), NeedData):
        out.append(ev)
    return out


def feed(data: bytes, reader: ImapReader | None = None, **limits: int) -> list[object]:
    reader = reader or ImapReader(**limits)
    reader.receive_data(data)
    return drain(reader)


def test_synchronising_literal_asks_for_continuation_before_the_data() -> None:
    reader = ImapReader()
    assert feed(b"a LOGIN {3}\r\n", reader) == [SendContinuation("Ready for literal data")]
    assert SendContinuation("Ready for literal data").response() == (
        b"+ Ready for literal data\r\n")
    assert feed(b"bob", reader) == []
    assert feed(b" pw\r\n", reader) == [CommandReceived(c.Login("a", "bob", "pw"))]


def test_non_synchronising_literal_needs_no_continuation() -> None:
    assert feed(b"a LOGIN {3+}\r\nbob {2+}\r\npw\r\n") == [
        CommandReceived(c.Login("a", "bob", "pw"))]


def test_literal_may_contain_crlf_and_nul() -> None:
    [ev] = feed(b"a APPEND INBOX {7+}\r\nA\r\n\x00B\r\n\r\n")
    assert isinstance(ev, CommandReceived) and ev.command.message == b"A\r\n\x00B\r\n"


def test_pipelined_commands_come_out_in_order() -> None:
    evs = feed(b"1 NOOP\r\n2 CAPABILITY\nBAD\r\n3 LOGOUT\r\n")
    assert [type(e).__name__ for e in evs] == [
        "CommandReceived", "CommandReceived", "ProtocolError", "CommandReceived"]
    assert isinstance(evs[2], ProtocolError) and evs[2].tag == "BAD"


def test_synchronising_literal_too_big_is_refused_without_continuation() -> None:
    reader = ImapReader(max_literal=100)
    [ev] = feed(b"a LOGIN {101}\r\n", reader)
    assert ev == ProtocolError("a", "Literal too big", too_big=True)
    assert ev.response() == b"a NO [TOOBIG] Literal too big\r\n"
    assert feed(b"b NOOP\r\n", reader) == [CommandReceived(c.Noop("b"))]


def test_append_literal_limit_is_the_message_size() -> None:
    reader = ImapReader(max_literal=10, max_message=1000)
    assert feed(b"a APPEND INBOX {1000}\r\n", reader) == [SendContinuation(
        "Ready for literal data")]
    [ev] = feed(b"x" * 1000 + b"\r\n", reader)
    assert isinstance(ev, CommandReceived) and len(ev.command.message) == 1000
    [ev] = feed(b"b APPEND INBOX {1001}\r\n", reader)
    assert ev == ProtocolError("b", "Message too big", too_big=True)


def test_non_synchronising_literal_too_big_is_skipped_then_refused() -> None:
    reader = ImapReader(max_literal=10)
    assert feed(b"a LOGIN {20+}\r\n" + b"y" * 15, reader) == []
    assert feed(b"y" * 5 + b" {3+}\r\nabc\r\nb NOOP\r\n", reader) == [
        ProtocolError("a", "Literal too big", too_big=True), CommandReceived(c.Noop("b"))]


def test_absurd_non_synchronising_literal_closes() -> None:
    [ev] = feed(b"a APPEND x {999999999999+}\r\n", max_message=1000)
    assert isinstance(ev, ProtocolError) and ev.close and ev.too_big and ev.tag == "a"


def test_line_too_long_is_dropped_as_it_arrives_and_keeps_the_tag() -> None:
    reader = ImapReader(max_line=1024)
    for _ in range(10):
        assert feed(b"tag7 LOGIN " + b"x" * 600, reader) == []
        assert reader.buffered < 1024
    assert feed(b"\r\nnext NOOP\r\n", reader) == [
        ProtocolError("tag7", "Command line too long"), CommandReceived(c.Noop("next"))]


def test_long_line_ending_in_non_sync_literal_skips_its_data() -> None:
    evs = feed(b"a LOGIN " + b"x" * 2000 + b" {5+}\r\nhello\r\nb NOOP\r\n", max_line=1024)
    assert evs == [ProtocolError("a", "Command line too long"), CommandReceived(c.Noop("b"))]


def test_text_around_literals_counts_towards_the_line_limit() -> None:
    parts = b"".join(b"{1+}\r\nx " for _ in range(300))
    evs = feed(b"a SEARCH TEXT " + parts + b"ALL\r\n", max_line=1024)
    assert evs == [ProtocolError("a", "Command line too long")]


def test_nul_and_garbage_become_errors() -> None:
    assert feed(b"a NOOP\x00\r\n") == [ProtocolError("a", "NUL octets are not allowed")]
    assert feed(b"\r\n") == [ProtocolError(None, "Empty command line")]
    [ev] = feed(b"\xff\xfe (((\r\n")
    assert isinstance(ev, ProtocolError) and ev.tag is None
    assert ev.response() == b"* BAD Missing or invalid tag\r\n"
    [ev] = feed(b"a SEARCH ((((ALL)))\r\n")
    assert isinstance(ev, ProtocolError) and ev.tag == "a"


def test_expect_line_for_authenticate_and_idle() -> None:
    reader = ImapReader()
    assert feed(b"a AUTHENTICATE PLAIN\r\n", reader) == [
        CommandReceived(c.Authenticate("a", "PLAIN"))]
    reader.expect_line()
    assert feed(b"AGJvYgBwdw==\r\n", reader) == [LineReceived(b"AGJvYgBwdw==")]
    assert feed(b"b IDLE\r\n", reader) == [CommandReceived(c.Idle("b"))]
    reader.expect_line()
    assert feed(b"DONE\r\nc NOOP\r\n", reader) == [
        LineReceived(b"DONE"), CommandReceived(c.Noop("c"))]


def test_clear_drops_pipelined_plaintext() -> None:
    reader = ImapReader()
    reader.receive_data(b"a STARTTLS\r\nb LOGIN evil x\r\n")
    assert reader.next_event() == CommandReceived(c.StartTls("a"))
    reader.clear()
    assert feed(b"", reader) == []


SAMPLES = [
    b"a1 LOGIN {3}\r\nbob {4+}\r\npass\r\n",
    b"a2 APPEND Drafts (\\Seen) \"07-Feb-2024 13:05:06 +0100\" {12}\r\nSubject: x\r\n\r\n",
    b'a3 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.512>)\r\n',
    b"a4 SEARCH CHARSET UTF-8 OR SUBJECT {4}\r\n\xc3\xa4\xc3\xb6 NOT SEEN\r\n",
    b"a5 LOGIN " + b"x" * 300 + b"\r\n",
    b"a6 SELECT {2000+}\r\n" + b"z" * 2000 + b"\r\n",
    b"\x00\xff garbage (\r\n",
    b"a7 ID (\"name\" \"x\")\r\n",
]


def _all_events(chunks: list[bytes]) -> list[object]:
    reader = ImapReader(max_line=256, max_literal=1000)
    out: list[object] = []
    for chunk in chunks:
        reader.receive_data(chunk)
        out += drain(reader)
    return out


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_splits_parse_the_same(data: st.DataObject) -> None:
    stream = b"".join(SAMPLES)
    whole = _all_events([stream])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _all_events(chunks) == whole


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=10))
def test_arbitrary_bytes_never_raise(blob: bytes, sizes: list[int]) -> None:
    reader = ImapReader(max_line=128, max_literal=64, max_message=256)
    pos = 0
    for size in [*sizes, len(blob)]:
        reader.receive_data(blob[pos:pos + size])
        pos += size
        for ev in drain(reader):
            if isinstance(ev, ProtocolError):
                assert ev.response().endswith(b"\r\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    b"a ", b"NOOP", b"LOGIN", b"{3}", b"{2+}", b"\r\n", b" ", b'"', b"\\", b"(", b")",
    b"FETCH 1 ", b"BODY[", b"]", b"SEARCH ", b"OR ", b"x", b"\x00", b"APPEND ", b"*",
]), max_size=40))
def test_token_soup_never_raises(tokens: list[bytes]) -> None:
    feed(b"".join(tokens), max_line=64, max_literal=8, max_message=16)


def test_sync_literal_inside_a_refused_command_is_answered_at_once() -> None:
    reader = ImapReader(max_literal=10)
    assert feed(b"a LOGIN {20+}\r\n" + b"x" * 20 + b" {5}\r\n", reader) == [
        ProtocolError("a", "Literal too big", too_big=True)]
    assert feed(b"b NOOP\r\n", reader) == [CommandReceived(c.Noop("b"))]


def test_expect_line_too_long_and_zero_length_literal() -> None:
    reader = ImapReader(max_line=1024)
    reader.expect_line()
    assert feed(b"A" * 3000 + b"\r\nb NOOP\r\n", reader) == [
        ProtocolError(None, "Command line too long"), CommandReceived(c.Noop("b"))]
    assert feed(b"c LOGIN {0}\r\n", reader) == [SendContinuation("Ready for literal data")]
    assert feed(b" {0+}\r\n\r\n", reader) == [CommandReceived(c.Login("c", "", ""))]
