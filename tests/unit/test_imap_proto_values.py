"""Sequence sets, FETCH items, SEARCH trees and modified UTF-7 (RFC 3501 5.1.3, 6.4, 9)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwing.proto.imap import search as s
from mailwing.proto.imap import utf7
from mailwing.proto.imap.fetchitems import MACROS, FetchItem, Section, parse_fetch_items
from mailwing.proto.imap.grammar import Cursor, ParseError
from mailwing.proto.imap.search import parse_search
from mailwing.proto.imap.seqset import SequenceSet, SequenceSetError


# -- sequence sets ---------------------------------------------------------------------------
def test_seqset_resolve() -> None:
    assert SequenceSet.parse("1:3,5,7:*").resolve(9) == [1, 2, 3, 5, 7, 8, 9]
    assert SequenceSet.parse("5:2").resolve(10) == [2, 3, 4, 5]
    assert SequenceSet.parse("*").resolve(4) == [4]
    assert SequenceSet.parse("*:3").resolve(5) == [3, 4, 5]
    assert SequenceSet.parse("7:*").resolve(5) == [5]  # RFC 3501 6.4.8: n:* holds the max
    assert SequenceSet.parse("1:*").resolve(0) == []
    assert SequenceSet.parse("3,1,3").resolve(5) == [1, 3]
    assert SequenceSet.parse("2:10").resolve(4) == [2, 3, 4]
    assert SequenceSet.parse("2:10").exceeds(4) and not SequenceSet.parse("2:*").exceeds(4)


def test_seqset_contains_and_str() -> None:
    seq = SequenceSet.parse("1:3,10:*")
    assert seq.contains(2, 20) and seq.contains(20, 20) and not seq.contains(5, 20)
    assert str(seq) == "1:3,10:*" and seq.has_star


@pytest.mark.parametrize("bad", ["", "0", "1:0", "a", "1,", ",1", "1::2", "01", "4294967296"])
def test_seqset_rejects(bad: str) -> None:
    with pytest.raises(SequenceSetError):
        SequenceSet.parse(bad)


def test_seqset_format() -> None:
    assert SequenceSet.format([1, 2, 3, 5]) == "1:3,5"
    assert SequenceSet.format([]) == ""
    assert SequenceSet.format([9, 4, 5]) == "9,4:5"


@given(st.sets(st.integers(1, 200)))
def test_seqset_format_round_trip(numbers: set[int]) -> None:
    ordered = sorted(numbers)
    if ordered:
        assert SequenceSet.parse(SequenceSet.format(ordered)).resolve(200) == ordered


# -- FETCH items ------------------------------------------------------------------------------
def items(text: str) -> tuple[FetchItem, ...]:
    cur = Cursor([text.encode()])
    result = parse_fetch_items(cur)
    cur.end()
    return result


def test_macros() -> None:
    assert items("FAST") == MACROS["FAST"]
    assert [i.name for i in items("full")][-1] == "BODY"
    with pytest.raises(ParseError):
        items("(ALL)")


def test_fetch_item_names_and_seen() -> None:
    peek, body, hdr, text = items(
        "(BODY.PEEK[HEADER.FIELDS (Date From)]<0.100> BODY[] RFC822.HEADER RFC822.TEXT)")
    assert peek.response_name == "BODY[HEADER.FIELDS (Date From)]<0>"
    assert str(peek) == "BODY.PEEK[HEADER.FIELDS (Date From)]<0.100>"
    assert not peek.sets_seen and peek.partial == (0, 100)
    assert body.section == Section() and body.sets_seen and body.response_name == "BODY[]"
    assert not hdr.sets_seen and text.sets_seen
    assert items("RFC822")[0].sets_seen and not items("BODY")[0].is_section
    assert items("BODY[1.2.3.TEXT]")[0].section == Section((1, 2, 3), "TEXT")
    assert items("body[2.header.fields.not (X-A)]")[0].response_name == (
        "BODY[2.HEADER.FIELDS.NOT (X-A)]")
    assert items("(UID MODSEQ BODYSTRUCTURE)")[1].name == "MODSEQ"


@pytest.mark.parametrize("bad", [
    "BODY[MIME]", "BODY[0]", "BODY[1.FOO]", "BODY[HEADER.FIELDS]", "BODY[TEXT", "BODY[]<1>",
    "BODY[]<0.0>", "BODY.PEEK", "FOO", "(FLAGS", "()", "BODY[HEADER.FIELDS (a:b)]",
])
def test_bad_fetch_items(bad: str) -> None:
    with pytest.raises(ParseError):
        items(bad)


# -- SEARCH -----------------------------------------------------------------------------------
def crit(text: str | bytes, *lits: bytes) -> s.SearchKey:
    raw = text.encode() if isinstance(text, str) else text
    parts: list[bytes] = []
    for piece, lit in zip(raw.split(b"\x01"), [*lits, None], strict=True):
        parts.append(piece)
        if lit is not None:
            parts.append(lit)
    cur = Cursor(parts)
    _, _, key = parse_search(cur)
    cur.end()
    return key


def test_search_every_key() -> None:
    assert crit("ALL") == s.All()
    assert crit("answered unanswered") == s.And((s.Flag("\\Answered", True),
                                                 s.Flag("\\Answered", False)))
    for name in ("DELETED", "DRAFT", "FLAGGED", "SEEN"):
        assert crit(name) == s.Flag("\\" + name.capitalize(), True)
    assert crit("KEYWORD $Junk") == s.Keyword("$Junk", True)
    assert crit("UNKEYWORD foo") == s.Keyword("foo", False)
    assert crit("NEW OLD RECENT") == s.And((s.New(), s.Old(), s.Recent()))
    assert crit("1:5,*") == s.Sequence(SequenceSet.parse("1:5,*"))
    assert crit("UID 3:*") == s.Uid(SequenceSet.parse("3:*"))
    assert crit('HEADER Message-ID "<a@b>"') == s.Header("Message-ID", "<a@b>")
    for name in ("FROM", "TO", "CC", "BCC", "SUBJECT", "BODY", "TEXT"):
        assert crit(f"{name} x") == s.Contains(name, "x")
    assert crit("BEFORE 1-Feb-2024") == s.Date("internal", "before", date(2024, 2, 1))
    assert crit('SENTSINCE "01-feb-2024"') == s.Date("sent", "since", date(2024, 2, 1))
    assert crit("ON 29-Feb-2024 SENTON 1-Jan-2000 SINCE 1-Jan-2000 SENTBEFORE 1-Jan-2000")
    assert crit("LARGER 100 SMALLER 5") == s.And((s.Size("larger", 100), s.Size("smaller", 5)))
    assert crit("MODSEQ 620162338") == s.ModSeq(620162338)


def test_search_boolean_structure() -> None:
    assert crit("NOT SEEN") == s.Not(s.Flag("\\Seen", True))
    assert crit("OR FROM a (TO b CC c)") == s.Or(
        s.Contains("FROM", "a"), s.And((s.Contains("TO", "b"), s.Contains("CC", "c"))))
    assert crit("(SEEN)") == s.Flag("\\Seen", True)
    assert crit("OR OR SEEN DRAFT NOT (DELETED)") == s.Or(
        s.Or(s.Flag("\\Seen", True), s.Flag("\\Draft", True)), s.Not(s.Flag("\\Deleted", True)))


def test_search_literal_utf8() -> None:
    assert crit(b"SUBJECT {6}\x01 SEEN", "Grüß".encode()) == s.And(
        (s.Contains("SUBJECT", "Grüß"), s.Flag("\\Seen", True)))


@pytest.mark.parametrize("bad", [
    "", "BOGUS", "OR SEEN", "NOT", "(SEEN", "SEEN)", "BEFORE 30-Feb-2024", "BEFORE 1-Foo-2024",
    "LARGER x", "UID x", "HEADER x", "KEYWORD \\Seen", "0",
])
def test_search_errors(bad: str) -> None:
    with pytest.raises(ParseError):
        crit(bad)


def test_search_depth_is_bounded() -> None:
    with pytest.raises(ParseError):
        crit("NOT " * 100 + "ALL")
    with pytest.raises(ParseError):
        crit("(" * 100 + "ALL" + ")" * 100)


# -- modified UTF-7 ---------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "wire"), [
    ("Entwürfe", "Entw&APw-rfe"), ("台北", "&U,BTFw-"), ("A&B", "A&-B"), ("INBOX", "INBOX"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"), ("", ""),
    ("😀", "&2D3eAA-"),
])
def test_utf7_vectors(text: str, wire: str) -> None:
    assert utf7.encode(text) == wire
    assert utf7.decode(wire) == text


@pytest.mark.parametrize("bad", [
    "&", "&Jjo", "&AGE-", "&U,BTFw-&ZeVnLIqe-", "&2D0-", "ü", "&U,BTF-", "&U/BTFw-",
])
def test_utf7_rejects(bad: str) -> None:
    with pytest.raises(utf7.Utf7Error):
        utf7.decode(bad)


@given(st.text())
def test_utf7_round_trip(text: str) -> None:
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return
    encoded = utf7.encode(text)
    assert encoded.isascii()
    assert utf7.decode(encoded) == text
