"""Sans-IO parts of ESEARCH/SEARCHRES/SORT/THREAD/WITHIN/OBJECTID: grammar, base subject,
threading and the ESEARCH response (RFC 4731, 5182, 5256, 5267, 5032, 8474)."""

from __future__ import annotations

import pytest

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import search as s
from mailwing.proto.imap.basesubject import base_subject, casemap
from mailwing.proto.imap.esearch import esearch, saved_result
from mailwing.proto.imap.seqset import SAVED
from mailwing.proto.imap.sortparse import SortKey
from mailwing.proto.imap.threads import (
    ThreadMessage,
    format_threads,
    ordered_subject,
    parse_msgids,
    references,
)
from tests.unit.test_imap_proto_commands import cmd, err


def test_search_return_and_saved_set() -> None:
    got = cmd("a UID SEARCH RETURN (MIN COUNT SAVE) $")
    assert isinstance(got, c.Search) and got.uid
    assert got.return_options == ("MIN", "COUNT", "SAVE")
    assert got.criteria == s.Sequence(SAVED)
    assert cmd("a SEARCH RETURN () ALL").return_options == ("ALL",)  # type: ignore[attr-defined]
    assert cmd("a SEARCH ALL").return_options is None  # type: ignore[attr-defined]
    assert cmd("a SEARCH UID $").criteria == s.Uid(SAVED)  # type: ignore[attr-defined]
    fetch = cmd("a FETCH $ (UID)")
    assert isinstance(fetch, c.Fetch) and fetch.sequence_set.saved
    assert str(fetch.sequence_set) == "$"
    for bad in ("a SEARCH RETURN (FOO) ALL", "a FETCH $1 (UID)", "a FETCH $:3 FLAGS"):
        assert err(bad).response().startswith(b"a BAD")


def test_within_and_objectid_keys() -> None:
    assert cmd("a SEARCH OLDER 10").criteria == s.Within("older", 10)  # type: ignore[attr-defined]
    assert cmd("a SEARCH YOUNGER 5").criteria == s.Within("younger", 5)  # type: ignore[attr-defined]
    assert cmd("a SEARCH EMAILID Eabc_-1").criteria == (  # type: ignore[attr-defined]
        s.ObjectId("EMAILID", "Eabc_-1"))
    assert cmd("a SEARCH THREADID T1").criteria == (  # type: ignore[attr-defined]
        s.ObjectId("THREADID", "T1"))
    for bad in ("a SEARCH OLDER 0", "a SEARCH YOUNGER x", "a SEARCH EMAILID a.b"):
        assert err(bad).response().startswith(b"a BAD")


def test_sort_and_thread_grammar() -> None:
    got = cmd("a UID SORT RETURN (ALL) (REVERSE ARRIVAL subject DISPLAYFROM) utf-8 SEEN 1:3")
    assert isinstance(got, c.Sort) and got.uid and got.return_options == ("ALL",)
    assert got.keys == (SortKey("ARRIVAL", True), SortKey("SUBJECT"), SortKey("DISPLAYFROM"))
    assert got.criteria == s.And((s.Flag("\\Seen", True), s.Sequence(got.criteria.keys[1].set)))  # type: ignore[union-attr]
    th = cmd("a THREAD REFERENCES US-ASCII ALL")
    assert isinstance(th, c.Thread) and th.algorithm == "REFERENCES" and not th.uid
    assert isinstance(cmd("a UID THREAD orderedsubject UTF-8 ALL"), c.Thread)
    for bad in ("a SORT () UTF-8 ALL", "a SORT (REVERSE) UTF-8 ALL",
                "a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
                "a THREAD JWZ UTF-8 ALL", "a SORT (SIZE FOO) UTF-8 ALL"):
        assert err(bad).response().startswith(b"a BAD"), bad
    assert b"BADCHARSET" in err("a SORT (SIZE) ISO-8859-1 ALL").response()


@pytest.mark.parametrize(("subject", "base", "reply"), [
    ("Hello", "Hello", False),
    ("Re: Hello", "Hello", True),
    ("RE:  re:Hello", "Hello", True),
    ("Fwd: Hello (fwd)", "Hello", True),
    ("Hello (FWD)  ", "Hello", True),
    ("[list] Hello", "Hello", False),
    ("[list] [x] Re: Hello", "Hello", True),
    ("Re [list]: Hello", "Hello", True),
    ("[fwd: Re: Hello]", "Hello", True),
    ("[only a blob]", "[only a blob]", False),
    ("\tfolded\r\n  subject ", "folded subject", False),
    ("", "", False),
    (None, "", False),
    ("Re:", "", True),
])
def test_base_subject(subject: str | None, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def test_casemap_only_ascii() -> None:
    assert casemap("abcÄé") == "ABCÄé".encode()
    assert casemap("a") > casemap("@")


def m(n: int, date: float, subject: str = "s", mid: str | None = None,
      refs: tuple[str, ...] = ()) -> ThreadMessage:
    return ThreadMessage(n, n, date, subject, mid, refs)


def test_ordered_subject() -> None:
    roots = ordered_subject([m(1, 30, "Re: A"), m(2, 10, "B"), m(3, 20, "a"),
                             m(4, 5, "A"), m(5, 40, "b")])
    assert format_threads(roots) == b"* THREAD (4 (3)(1))(2 5)\r\n"
    assert format_threads([]) == b"* THREAD\r\n"


def test_references_chains_dummies_and_loops() -> None:
    msgs = [
        m(1, 1, "top", "1@x"),
        m(2, 2, "Re: top", "2@x", ("1@x",)),
        m(3, 3, "Re: top", "3@x", ("1@x", "2@x")),
        m(4, 4, "Re: top", "4@x", ("1@x",)),  # a second child of 1
        m(5, 5, "x", "5@x", ("gone@x",)),  # dummy parent with one child: pruned
        m(6, 6, "y", "6@x", ("gone2@x",)),
        m(7, 7, "z", "7@x", ("gone2@x",)),  # dummy root with two children stays
        m(8, 8, "loop", "8@x", ("9@x",)),
        m(9, 9, "loop", "9@x", ("8@x",)),  # 8 is already 9's child: no loop made
        m(10, 10, "dup", "1@x"),  # duplicate Message-ID gets its own container
    ]
    assert format_threads(references(msgs)) == (
        b"* THREAD (1 (2 3)(4))(5)((6)(7))(9 8)(10)\r\n")


def test_references_subject_merge() -> None:
    msgs = [m(1, 1, "Topic", "a@x"), m(2, 2, "Re: Topic", "b@x"), m(3, 3, "Topic", "c@x")]
    # 2 is a reply and 1 is not: 2 becomes 1's child; 3 is not a reply: a dummy holds both
    assert format_threads(references(msgs)) == b"* THREAD ((1 2)(3))\r\n"


def test_parse_msgids() -> None:
    assert parse_msgids("<a@x> junk <b@y>\r\n <c@z>") == ["a@x", "b@y", "c@z"]
    assert parse_msgids(None) == []


def test_esearch_lines_and_saved() -> None:
    assert esearch("t", [3, 1, 2, 7], ["MIN", "MAX", "ALL", "COUNT"], uid=True) == (
        b'* ESEARCH (TAG "t") UID MIN 1 MAX 7 ALL 1:3,7 COUNT 4\r\n')
    assert esearch("t", [], ["MIN", "ALL", "COUNT"], uid=False) == (
        b'* ESEARCH (TAG "t") COUNT 0\r\n')
    assert esearch("t", [5, 2, 3], ["MIN", "MAX", "ALL"], uid=False, sort_order=True) == (
        b'* ESEARCH (TAG "t") MIN 5 MAX 3 ALL 5,2:3\r\n')
    assert esearch("t", [1], ["SAVE"], uid=False) is None
    assert saved_result([4, 2, 9], ["SAVE"]) == [4, 2, 9]
    assert saved_result([4, 2, 9], ["SAVE", "MIN"]) == [2]
    assert saved_result([4, 2, 9], ["SAVE", "MIN", "MAX"]) == [2, 9]
    assert saved_result([4, 2, 9], ["SAVE", "MIN", "COUNT"]) == [4, 2, 9]
    assert saved_result([4, 2, 9], ["SAVE", "MAX"], sort_order=True) == [9]
    assert saved_result([], ["SAVE", "MIN"]) == []


def test_preview_lazy_and_fetch_modifiers() -> None:
    lazy = cmd("a FETCH 1 PREVIEW (LAZY)")
    assert isinstance(lazy, c.Fetch) and [i.name for i in lazy.items] == ["PREVIEW"]
    both = cmd("a FETCH 1 (UID PREVIEW (lazy)) (CHANGEDSINCE 5)")
    assert isinstance(both, c.Fetch) and both.changed_since == 5
    plain = cmd("a FETCH 1 PREVIEW (CHANGEDSINCE 7)")  # a modifier, not a preview-mod
    assert isinstance(plain, c.Fetch) and plain.changed_since == 7
    assert err("a FETCH 1 PREVIEW (LAZY FAST)").response().startswith(b"a BAD")


def test_deep_threads_need_no_recursion() -> None:
    """A reply chain thousands deep (and a deep tree with branches) must not hit Python's
    recursion limit: it would end the session instead of answering."""
    chain = [m(1, 1, "deep", "0@x")] + [
        m(i + 1, i + 1, "Re: deep", f"{i}@x", (f"{i - 1}@x",)) for i in range(1, 5000)]
    out = format_threads(references(chain))
    assert out.startswith(b"* THREAD (1 2 3 ") and out.endswith(b" 5000)\r\n")
    # every message has two replies' worth of branching: 3000 deep with a side leaf each
    tree = [m(1, 1, "t", "n0@x")]
    for i in range(1, 3000):
        tree.append(m(len(tree) + 1, len(tree) + 1, "t", f"n{i}@x", (f"n{i - 1}@x",)))
        tree.append(m(len(tree) + 1, len(tree) + 1, "t", f"leaf{i}@x", (f"n{i - 1}@x",)))
    out = format_threads(references(tree))
    assert out.count(b"(") == out.count(b")") and out.startswith(b"* THREAD (1 (2 (")
    # a dummy parent thousands deep (missing messages) is pruned without recursion too
    gaps = [m(1, 1, "g", "a@x", tuple(f"missing{i}@x" for i in range(3000)))]
    assert format_threads(references(gaps)) == b"* THREAD (1)\r\n"
    assert format_threads(ordered_subject(chain))[:20] == b"* THREAD (1 (2)(3)(4"


def test_failed_save_search_is_flagged() -> None:
    """RFC 5182 section 2.1: a SEARCH/SORT RETURN (SAVE) that fails, even on syntax, empties
    ``$``; the reader says which failures those are."""
    assert err("a SEARCH RETURN (SAVE) BOGUS").saves_result
    assert err("a uid sort return (min save) (FOO) UTF-8 ALL").saves_result
    assert not err("a SEARCH RETURN (MIN) BOGUS").saves_result
    assert not err("a FETCH $ BOGUS").saves_result
