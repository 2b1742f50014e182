"""RFC 7162 syntax: SELECT/EXAMINE parameters, FETCH and STORE modifiers, SEARCH MODSEQ, and
the VANISHED / MODIFIED / CLOSED responses; plus the interval helpers of the resync service."""

from __future__ import annotations

import pytest

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap import search as s
from mailwing.proto.imap.capabilities import capabilities
from mailwing.proto.imap.fetchitems import FetchItem
from mailwing.proto.imap.seqset import SequenceSet
from mailwing.services.imap_condstore import missing_uids
from tests.unit.test_imap_proto_commands import cmd, err


def test_select_parameters() -> None:
    assert cmd("a SELECT INBOX (CONDSTORE)") == c.Select("a", "INBOX", False, True)
    got = cmd("a EXAMINE INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))")
    assert got == c.Select("a", "INBOX", True, False, c.QresyncParams(
        67890007, 20050715194045000, SequenceSet.parse("41,43:211,214:541")))
    got = cmd("a SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 "
              "(5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,"
              "29985,29988,29991,29994,29997)))")
    assert isinstance(got, c.Select) and got.qresync is not None
    assert got.qresync.seq_match is not None
    assert got.qresync.seq_match[0] == SequenceSet.parse("5000,7500,9000,9990:9999")
    got = cmd("a SELECT INBOX (CONDSTORE QRESYNC (1 2 (1:2 5:6)))")
    assert isinstance(got, c.Select) and got.condstore and got.qresync == c.QresyncParams(
        1, 2, None, (SequenceSet.parse("1:2"), SequenceSet.parse("5:6")))
    assert cmd("a SELECT INBOX (qresync (1 0))") == c.Select(
        "a", "INBOX", False, False, c.QresyncParams(1, 0))
    # three numbers, two UIDs: parsed, then refused by the session (after closing the mailbox)
    got = cmd("a SELECT INBOX (QRESYNC (1 5 1:9 (1:3 4:5)))")
    assert isinstance(got, c.Select) and got.qresync is not None
    assert not got.qresync.seq_match_paired
    assert c.QresyncParams(1, 5, None, (SequenceSet.parse("1:3,2"),
                                        SequenceSet.parse("7:9"))).seq_match_paired


@pytest.mark.parametrize("line", [
    "a SELECT INBOX (QRESYNC)",
    "a SELECT INBOX (QRESYNC ())",
    "a SELECT INBOX (QRESYNC (0 5))",  # UIDVALIDITY is a non-zero number
    "a SELECT INBOX (QRESYNC (1 x))",
    "a SELECT INBOX (QRESYNC (1 5 1:*x))",
    "a SELECT INBOX (QRESYNC (1 5 1:9 (1:* 4:5)))",
    "a SELECT INBOX (QRESYNC (1 5) QRESYNC (1 5))",
    "a SELECT INBOX (CONDSTORE CONDSTORE)",
    "a SELECT INBOX (FOO)",
    "a SELECT INBOX (CONDSTORE",
])
def test_bad_select_parameters(line: str) -> None:
    assert err(line).response().split(b" ", 1)[1].startswith(b"BAD")


def test_fetch_modifiers() -> None:
    got = cmd("a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)")
    assert isinstance(got, c.Fetch) and got.changed_since == 12345 and not got.vanished
    got = cmd("a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert isinstance(got, c.Fetch) and got.uid and got.vanished and got.changed_since == 12345
    got = cmd("a UID FETCH 1:* FLAGS (VANISHED CHANGEDSINCE 7)")
    assert isinstance(got, c.Fetch) and got.vanished and got.changed_since == 7
    assert cmd("a FETCH 1 MODSEQ") == c.Fetch("a", SequenceSet.parse("1"),
                                              (FetchItem("MODSEQ"),))


@pytest.mark.parametrize(("line", "text"), [
    ("a FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)", texts.BAD_VANISHED),  # not UID FETCH
    ("a UID FETCH 1:* FLAGS (VANISHED)", texts.BAD_VANISHED),  # no CHANGEDSINCE
    ("a UID FETCH 1:* FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", texts.BAD_FETCH_MODIFIER),
    ("a UID FETCH 1:* FLAGS (FOO 1)", texts.BAD_FETCH_MODIFIER),
    ("a UID FETCH 1:* FLAGS (CHANGEDSINCE 9223372036854775808)", texts.EXPECTED_NUMBER),
])
def test_bad_fetch_modifiers(line: str, text: str) -> None:
    assert err(line).response().endswith(text.encode() + b"\r\n")


def test_store_unchangedsince() -> None:
    got = cmd("a UID STORE 1:5 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)")
    assert isinstance(got, c.Store) and got.unchanged_since == 320162338 and got.silent


def test_search_modseq_forms() -> None:
    assert cmd("a SEARCH MODSEQ 5") == c.Search("a", s.ModSeq(5))
    got = cmd('a SEARCH MODSEQ "/flags/\\\\draft" all 620162338')
    assert got == c.Search("a", s.ModSeq(620162338, "/flags/\\draft", "all"))
    got = cmd('a UID SEARCH OR NOT MODSEQ "/flags/$x" priv 3 MODSEQ 0')
    assert isinstance(got, c.Search)
    assert got.criteria == s.Or(s.Not(s.ModSeq(3, "/flags/$x", "priv")), s.ModSeq(0))
    for bad in ('a SEARCH MODSEQ "/flags/x" mine 3', 'a SEARCH MODSEQ "/other" all 3',
                'a SEARCH MODSEQ "/flags/x" 3', "a SEARCH MODSEQ"):
        assert err(bad).response().split(b" ", 1)[1].startswith(b"BAD")


def test_responses() -> None:
    assert responses.vanished([5, 1, 2, 3, 9]) == b"* VANISHED 1:3,5,9\r\n"
    assert responses.vanished([7], earlier=True) == b"* VANISHED (EARLIER) 7\r\n"
    assert responses.ok("a", texts.MODIFIED, responses.Code.modified([9, 7, 8])) == (
        b"a OK [MODIFIED 7:9] Conditional STORE failed\r\n")
    assert responses.search([2, 4], 917162500) == b"* SEARCH 2 4 (MODSEQ 917162500)\r\n"
    assert responses.ok("*", texts.CLOSED, responses.Code.CLOSED).startswith(b"* OK [CLOSED]")
    assert {"CONDSTORE", "QRESYNC"} <= set(capabilities(True, True, True))


def test_missing_uids_work_by_interval() -> None:
    assert missing_uids([2, 5, 6], [(1, 8)]) == [1, 3, 4, 7, 8]
    assert missing_uids([2, 5, 6], [(1, 2), (5, 7)]) == [1, 7]
    assert missing_uids([], [(3, 4)]) == [3, 4]
    assert missing_uids(list(range(1, 100_001)), [(1, 100_002)]) == [100_001, 100_002]


def test_flag_changes_wait_with_withheld_expunges_when_asked() -> None:
    """RFC 7162 section 3.2: while EXPUNGEs must wait (during FETCH/STORE/SEARCH), a CONDSTORE
    session is not told newer MODSEQs either; expunges carry their UID for VANISHED."""
    from tests.unit.test_imap_selected import entry, view

    v = view(1, 2, 3)
    v.note_changes(32, [entry(1, "\\Seen", modseq=32)], [2])
    assert v.take_updates(allow_expunge=False, hold_flags=True) == []
    taken = v.take_updates(allow_expunge=True, hold_flags=True)
    assert [type(u).__name__ for u in taken] == ["Expunged", "FlagsChanged"]
    assert taken[0].uid == 2  # type: ignore[union-attr]
    w = view(1, 2, 3)
    w.note_changes(32, [entry(1, "\\Seen", modseq=32)], [2])
    assert [type(u).__name__ for u in w.take_updates(allow_expunge=False)] == ["FlagsChanged"]
