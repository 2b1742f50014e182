"""The per-command shortcuts of the IMAP hot path give exactly what the plain computation
gives: cached flag lists, token scans, cached sequence sets, shared row records and the
pruning cadence of the expunged-UID memory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mailwing.proto.imap import wire as pw
from mailwing.proto.imap.grammar import ATOM_CHARS, Cursor, ParseError
from mailwing.proto.imap.parser import parse_command, read_tag
from mailwing.proto.imap.seqset import SequenceSet
from mailwing.services.imap_condstore import PRUNE_EVERY_MAX, prune_every, prune_history
from mailwing.services.imap_selected import RECENT, wire_flags
from mailwing.storage.common import decode_flags, row_to_content, row_to_entry


@pytest.mark.parametrize("flags", [(), ("\\Seen",), ("$b", "\\Seen", "$a", "\\Deleted")])
@pytest.mark.parametrize("recent", [False, True])
def test_wire_flags_equals_the_sorted_list(flags: tuple[str, ...], recent: bool) -> None:
    names = set(flags) | ({RECENT} if recent else set())
    for _ in range(2):  # computed, then cached
        assert wire_flags(frozenset(flags), recent) == pw.flag_list(sorted(names))


def test_token_scans() -> None:
    cur = Cursor([b"abc(def"])
    assert cur.run(ATOM_CHARS) == b"abc" and cur.pos == 3
    assert cur.run(ATOM_CHARS) == b"" and cur.pos == 3
    assert read_tag(b"a1 NOOP") == "a1"
    assert read_tag(b"+ NOOP") is None and read_tag(b"") is None and read_tag(b"a{ x") is None
    assert read_tag(b"x" * 64 + b" NOOP") == "x" * 64 and read_tag(b"x" * 65 + b" NOOP") is None


def test_sequence_sets_parse_alike_every_time() -> None:
    first = parse_command([b"a FETCH 1:3,7:* (FLAGS)"])
    again = parse_command([b"b FETCH 1:3,7:* (FLAGS)"])
    assert first.sequence_set == again.sequence_set == SequenceSet.parse("1:3,7:*")
    for _ in range(2):  # an error is raised every time, never cached as a result
        with pytest.raises(ParseError):
            Cursor([b"1:0"]).sequence_set()


def test_row_mappers_share_equal_records() -> None:
    row = ("ab" * 32, 10, 12, 1, "<m@x>", "subject", "a@x", "b@x", None,
           "2026-01-02T03:04:05+00:00")
    a, b = row_to_content(row), row_to_content(list(row))
    assert a is b and a.crlf_size == 12 and a.crlf_clean is True
    assert a.fields.date is not None and a.fields.date.year == 2026
    other = row_to_content((*row[:2], 13, *row[3:]))
    assert other is not a and other.crlf_size == 13
    mail = (7, 1, 3, 9, "2026-01-02T03:04:05.000000+00:00", "$a \\Seen")
    entry = row_to_entry(mail + row)
    assert row_to_entry(list(mail + row)) is entry and entry.content is a  # SQLite: shared
    assert entry.flags == frozenset({"$a", "\\Seen"}) and entry.modseq == 9
    changed = row_to_entry((*mail[:3], 10, mail[4], "$a", *row))
    assert changed is not entry and (changed.modseq, changed.flags) == (10, frozenset({"$a"}))
    listed = row_to_entry((*mail[:5], ["$a", "\\Seen"], *row))  # PostgreSQL's text[]
    assert listed == entry and listed is not entry
    assert decode_flags("\\Seen $a") == frozenset({"\\Seen", "$a"})
    assert decode_flags("") == frozenset() and decode_flags(["$x"]) == frozenset({"$x"})


class _Storage:
    def __init__(self) -> None:
        self.prunes: list[tuple[int, int]] = []

    async def prune_expunged(self, mailbox_id: int, keep: int) -> int:
        self.prunes.append((mailbox_id, keep))
        return 0


def test_pruning_cadence() -> None:
    assert prune_every(0) == prune_every(1) == prune_every(63) == 1
    assert prune_every(64 * 10) == 10 and prune_every(10**9) == PRUNE_EVERY_MAX
    storage: Any = _Storage()

    async def go() -> None:
        for _ in range(3):  # a small retention: every expunge prunes
            await prune_history(storage, 1, 1)
        assert storage.prunes == [(1, 1)] * 3
        storage.prunes.clear()
        for _ in range(9):
            await prune_history(storage, 2, 640)
        assert storage.prunes == []
        await prune_history(storage, 2, 640)  # the tenth UID since the last prune
        assert storage.prunes == [(2, 640)]
        await prune_history(storage, 3, 640, expunged=25)  # one expunge of many UIDs
        assert storage.prunes == [(2, 640), (3, 640)]

    asyncio.run(go())


@pytest.mark.parametrize("spec", [b"(FLAGS)", b"(UID FLAGS RFC822.SIZE)", b"(FLAGS MODSEQ)",
                                  b"FAST", b"(RFC822.SIZE)"])
@pytest.mark.parametrize(("with_uid", "with_flags"), [(False, False), (True, True)])
def test_fetch_line_is_the_segments_of_items(spec: bytes, with_uid: bool,
                                             with_flags: bool) -> None:
    """Fetcher.line (one piece, no coroutine) answers exactly what items() and
    fetch_segments answer, and declines (None) an item that needs storage."""
    from datetime import UTC, datetime

    from mailwing.model import ContentInfo, Mailbox, MailEntry
    from mailwing.proto.imap.fetchitems import parse_fetch_items
    from mailwing.proto.imap.responses import fetch_segments
    from mailwing.services.imap_fetch import Fetcher
    from mailwing.services.imap_selected import SelectedView

    content = ContentInfo("ab" * 32, 10, 12, True)
    when = datetime(2026, 1, 2, tzinfo=UTC)
    entries = [MailEntry(i, 1, i, 5 + i, when, frozenset({"\\Seen", "$k"} if i % 2 else ()),
                         content) for i in (3, 4)]
    view = SelectedView(Mailbox(1, 1, "INBOX", 7, 5, 9, None, True), entries,
                        read_only=False, modseq=9, recent_floor=4)
    fetcher = Fetcher(None, view)  # type: ignore[arg-type]
    items = parse_fetch_items(Cursor([spec]))
    for seq, uid in ((1, 3), (2, 4)):
        line = fetcher.line(seq, uid, items, with_uid=with_uid, with_flags=with_flags)
        data = asyncio.run(fetcher.items(uid, items, with_uid=with_uid, with_flags=with_flags))
        assert data is not None and line == b"".join(fetch_segments(seq, data))  # type: ignore[arg-type]
    envelope = parse_fetch_items(Cursor([b"(FLAGS ENVELOPE)"]))  # not in the view cache
    assert fetcher.line(1, 3, envelope, with_uid=False, with_flags=False) is None
