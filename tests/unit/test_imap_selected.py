"""The selected-mailbox view: sequence mapping, pending updates, expunge ordering (RFC 3501
sections 2.3.1.2, 5.2, 7.4.1), without sockets."""

from __future__ import annotations

from datetime import UTC, datetime

from mailwing.model import ContentInfo, Mailbox, MailEntry
from mailwing.services.imap_selected import (
    RECENT,
    Exists,
    Expunged,
    FlagsChanged,
    Recent,
    SelectedView,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BOX = Mailbox(id=7, user_id=1, name="INBOX", uidvalidity=99, uidnext=20, highestmodseq=30,
              special_use=None, subscribed=True)


def entry(uid: int, *flags: str, modseq: int = 1) -> MailEntry:
    info = ContentInfo(sha256=f"{uid:064x}", size=10 * uid, crlf_size=10 * uid, crlf_clean=True)
    return MailEntry(id=uid, mailbox_id=7, uid=uid, modseq=modseq, internal_date=NOW,
                     flags=frozenset(flags), content=info)


def view(*uids: int, floor: int | None = None, read_only: bool = False) -> SelectedView:
    return SelectedView(BOX, [entry(u) for u in uids], read_only=read_only, modseq=30,
                        recent_floor=floor)


def test_sequence_mapping_and_star() -> None:
    v = view(3, 5, 9, 12)
    assert v.exists == 4
    assert v.seq_of(9) == 3 and v.seq_of(4) is None
    assert v.uid_of(1) == 3
    assert v.resolve([(2, 3)], by_uid=False) == [(2, 5), (3, 9)]
    assert v.resolve([(4, 10)], by_uid=True) == [(2, 5), (3, 9)]
    # "UID 100:*" includes the highest UID even though it is below 100 (RFC 3501 6.4.8)
    assert v.resolve([(100, v.star(by_uid=True))], by_uid=True) == [(4, 12)]
    # ranges are unordered and may overlap; out-of-range numbers are dropped
    assert v.resolve([(3, 1), (2, 2), (9, 99)], by_uid=False) == [(1, 3), (2, 5), (3, 9)]
    assert v.uidnext == 20


def test_recent_floor_and_first_unseen() -> None:
    v = SelectedView(BOX, [entry(1, "\\Seen"), entry(2), entry(3)], read_only=False, modseq=1,
                     recent_floor=3)
    assert v.recent == {3}
    assert RECENT in v.flags_of(3) and RECENT not in v.flags_of(2)
    assert v.first_unseen() == 2


def test_new_mail_is_pending_until_taken() -> None:
    v = view(1, 2)
    fresh = v.note_changes(31, [entry(3, modseq=31)], [])
    assert fresh == [3]
    assert v.exists == 2  # numbering unchanged until EXISTS is sent
    v.note_recent(fresh)
    assert v.take_updates(allow_expunge=False) == [Exists(3), Recent(1)]
    assert v.exists == 3 and v.modseq == 31
    assert v.take_updates(allow_expunge=True) == []


def test_expunge_elsewhere_waits_for_an_allowed_moment() -> None:
    v = view(1, 2, 3, 4)
    v.note_changes(32, [], [2, 3])
    # during FETCH/STORE/SEARCH: no EXPUNGE, numbering stays, the messages are still known
    assert v.take_updates(allow_expunge=False) == []
    assert v.seq_of(4) == 4 and 2 in v.gone and v.entries[2].uid == 2
    # EXPUNGE responses refer to the numbering at the moment each one is sent
    assert v.take_updates(allow_expunge=True) == [Expunged(2), Expunged(2)]
    assert v.uids == [1, 4] and v.seq_of(4) == 2


def test_new_mail_and_deferred_expunge_keep_numbers_consistent() -> None:
    v = view(1, 2, 3)
    v.note_changes(33, [entry(5, modseq=33)], [1])
    assert v.take_updates(allow_expunge=False) == [Exists(4), Recent(0)]
    assert v.seq_of(5) == 4  # the expunged message still holds number 1
    assert v.take_updates(allow_expunge=True) == [Expunged(1)]
    assert v.seq_of(5) == 3


def test_flag_changes_elsewhere_become_fetch_responses() -> None:
    v = view(1, 2)
    v.note_changes(34, [entry(2, "\\Flagged", modseq=34), entry(1, modseq=34)], [])
    assert v.take_updates(allow_expunge=False) == [FlagsChanged(2, 2, frozenset({"\\Flagged"}))]
    # a change of an entry that is gone is not reported
    v.note_changes(35, [entry(1, "\\Seen", modseq=35)], [1])
    assert v.take_updates(allow_expunge=False) == []


def test_own_changes_are_reported_once() -> None:
    v = view(1, 2, 3)
    assert v.own_flags([entry(2, "\\Seen", modseq=40)]) == [
        FlagsChanged(2, 2, frozenset({"\\Seen"}))
    ]
    # the same change coming back through mail_changes gives nothing
    v.note_changes(40, [entry(2, "\\Seen", modseq=40)], [])
    assert v.take_updates(allow_expunge=True) == []
    assert v.own_expunge([1, 3]) == [Expunged(1), Expunged(2)]
    assert v.uids == [2]
    v.note_changes(41, [], [1, 3])
    assert v.take_updates(allow_expunge=True) == []


def test_new_mail_seen_twice_is_announced_once() -> None:
    v = view(1)
    assert v.note_changes(31, [entry(2, modseq=31)], []) == [2]
    assert v.note_changes(32, [entry(2, "\\Seen", modseq=32)], []) == []
    assert v.take_updates(allow_expunge=True) == [Exists(2), Recent(0)]
    assert v.entries[2].flags == {"\\Seen"}


async def test_open_view_and_refresh_with_real_storage(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    """Two views of one mailbox over a real SQLite storage: \\Recent goes to the first
    read-write SELECT only, and changes made through storage reach the other view."""
    from mailwing.services.imap_selected import open_view, refresh
    from mailwing.storage.interface import Delivery

    user, _ = await sqlite_store.add_user("u@example.test", "x", create_domain=True)
    box = await sqlite_store.get_mailbox(user.id, "INBOX")
    info = await sqlite_store.store_content(b"Subject: a\r\n\r\nbody\r\n")
    await sqlite_store.append(info, [Delivery(box.id), Delivery(box.id)])
    first = await open_view(sqlite_store, box, read_only=False)
    second = await open_view(sqlite_store, box, read_only=False)
    examine = await open_view(sqlite_store, box, read_only=True)
    assert first.recent == {1, 2} and second.recent == set() and examine.recent == set()

    await sqlite_store.append(info, [Delivery(box.id)])
    await sqlite_store.set_flags(box.id, [1], ["\\Seen"], "add")
    await sqlite_store.expunge(box.id, [2])
    await refresh(sqlite_store, second)
    assert second.take_updates(allow_expunge=False) == [
        Exists(3), Recent(1), FlagsChanged(1, 1, frozenset({"\\Seen"}))]
    assert second.take_updates(allow_expunge=True) == [Expunged(2)]
    assert second.uids == [1, 3] and second.recent == {3}
    await refresh(sqlite_store, first)
    # expunges first, so EXISTS counts what remains; UID 3 was claimed by the other session
    assert first.take_updates(allow_expunge=True) == [
        Expunged(2), Exists(2), Recent(1), FlagsChanged(1, 1, frozenset({"\\Seen", RECENT}))]
    assert 3 not in first.recent
