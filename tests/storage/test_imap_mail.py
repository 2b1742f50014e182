"""IMAP mail operations: STORE with CONDSTORE (RFC 7162 3.1.3), COPY/MOVE (RFC 3501 6.4.7,
RFC 6851, COPYUID of RFC 4315), change tracking for QRESYNC and the content cache."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage
from tests.storage.conftest import fill, highest_modseq, inbox_id
from tests.storage.test_mail import stored_copies

MESSAGE = b"From: a@example.org\r\nSubject: flags\r\n\r\nbody\r\n"


async def _flags(storage: Storage, mailbox_id: int) -> dict[int, frozenset[str]]:
    return {e.uid: e.flags for e in await storage.list_mail(mailbox_id)}


async def test_set_flags_modes(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 3, MESSAGE)
    changed, modified = await storage.set_flags(inbox, [1, 2], ["\\Seen", "$Work"], "add")
    assert modified == [] and [e.uid for e in changed] == [1, 2]
    assert changed[0].flags == frozenset({"\\Seen", "$Work"})
    changed, _ = await storage.set_flags(inbox, [1, 2, 3], ["$Work"], "remove")
    assert [e.uid for e in changed] == [1, 2]  # 3 had no $Work: unchanged, not listed
    changed, _ = await storage.set_flags(inbox, [2, 3], ["\\Flagged"], "replace")
    assert [(e.uid, e.flags) for e in changed] == [
        (2, frozenset({"\\Flagged"})), (3, frozenset({"\\Flagged"}))
    ]
    assert await _flags(storage, inbox) == {
        1: frozenset({"\\Seen"}), 2: frozenset({"\\Flagged"}), 3: frozenset({"\\Flagged"})
    }
    changed, _ = await storage.set_flags(inbox, [1], [], "replace")
    assert changed[0].flags == frozenset()
    with pytest.raises(ValueError):
        await storage.set_flags(inbox, [1], ["\\Seen"], "toggle")  # type: ignore[arg-type]


async def test_set_flags_one_modseq_for_really_changed_entries(
    storage: Storage, user: User
) -> None:
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 3, MESSAGE)
    await storage.set_flags(inbox, [1], ["\\Seen"], "add")
    before = {e.uid: e.modseq for e in await storage.list_mail(inbox)}
    highest = await highest_modseq(storage, inbox)
    changed, _ = await storage.set_flags(inbox, [1, 2, 3, 99], ["\\Seen"], "add")
    assert [e.uid for e in changed] == [2, 3]
    assert {e.modseq for e in changed} == {highest + 1}
    assert await highest_modseq(storage, inbox) == highest + 1
    after = {e.uid: e.modseq for e in await storage.list_mail(inbox)}
    assert after == {1: before[1], 2: highest + 1, 3: highest + 1}
    assert changed == [e for e in await storage.list_mail(inbox) if e.uid in (2, 3)]
    # Nothing changes: no new MODSEQ at all.
    assert await storage.set_flags(inbox, [1, 2, 3], ["\\Seen"], "add") == ([], [])
    assert await storage.set_flags(inbox, [], ["\\Seen"], "add") == ([], [])
    assert await highest_modseq(storage, inbox) == highest + 1


@pytest.mark.parametrize("expect_noop", [False, True])
async def test_set_flags_expecting_no_change_answers_the_same(
    storage: Storage, user: User, expect_noop: bool
) -> None:
    """``expect_noop`` (a STORE of flags the session believes are there) only lets storage
    skip the write transaction: whether the hint is right or wrong, with or without
    UNCHANGEDSINCE, the result and the stored state are those of a plain set_flags."""
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 4, MESSAGE)
    await storage.set_flags(inbox, [1, 2, 3], ["\\Seen"], "add")
    await storage.set_flags(inbox, [3], ["$Work"], "add")
    highest = await highest_modseq(storage, inbox)
    kw = {"expect_noop": expect_noop}
    assert await storage.set_flags(inbox, [1, 2, 99], ["\\seen"], "add", **kw) == ([], [])
    assert await storage.set_flags(inbox, [1, 2], ["$Work"], "remove", **kw) == ([], [])
    assert await storage.set_flags(inbox, [1, 2], ["\\Seen"], "replace", **kw) == ([], [])
    assert await storage.set_flags(
        inbox, [1, 2, 3], ["\\Seen"], "add", unchanged_since=highest - 1, **kw) == ([], [3])
    assert await highest_modseq(storage, inbox) == highest  # nothing was written
    changed, modified = await storage.set_flags(inbox, [1, 4], ["\\Seen"], "add", **kw)
    assert ([e.uid for e in changed], modified) == ([4], [])  # a wrong hint: still applied
    assert await highest_modseq(storage, inbox) == highest + 1
    assert (await _flags(storage, inbox))[4] == frozenset({"\\Seen"})
    with pytest.raises(ValueError):
        await storage.set_flags(inbox, [1], ["\\Seen"], "toggle", **kw)  # type: ignore[arg-type]


async def test_recent_is_never_stored_and_system_flags_are_canonical(
    storage: Storage, user: User
) -> None:
    inbox = await inbox_id(storage, user)
    content = await storage.store_content(MESSAGE)
    [entry] = await storage.append(content, [Delivery(inbox, frozenset({"\\Recent", "\\SEEN"}))])
    assert entry.flags == frozenset({"\\Seen"})
    changed, _ = await storage.set_flags(inbox, [1], ["\\recent", "\\flagged"], "add")
    assert changed[0].flags == frozenset({"\\Seen", "\\Flagged"})
    assert await storage.set_flags(inbox, [1], ["\\Recent"], "add") == ([], [])
    assert (await storage.list_mail(inbox))[0].flags == frozenset({"\\Seen", "\\Flagged"})


async def test_unchanged_since_reports_modified_uids(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 3, MESSAGE)
    since = await highest_modseq(storage, inbox)
    await storage.set_flags(inbox, [2], ["$Other"], "add")  # another session's change
    changed, modified = await storage.set_flags(
        inbox, [1, 2, 3], ["\\Deleted"], "add", unchanged_since=since
    )
    assert modified == [2]
    assert [e.uid for e in changed] == [1, 3]
    assert (await _flags(storage, inbox))[2] == frozenset({"$Other"})
    # UNCHANGEDSINCE 0 fails every message (RFC 7162 3.1.3).
    changed, modified = await storage.set_flags(
        inbox, [1, 3], ["\\Seen"], "add", unchanged_since=0
    )
    assert (changed, modified) == ([], [1, 3])


async def test_copy_keeps_flags_dates_and_shares_content(
    storage: Storage, user: User, database_url: str, data_dir: Path
) -> None:
    inbox, archive = await inbox_id(storage, user), await inbox_id(storage, user, "Archive")
    when = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    content = await storage.store_content(MESSAGE)
    await storage.append(content, [Delivery(archive)])  # archive's UIDNEXT is now 2
    await storage.append(content, [Delivery(inbox, frozenset({"\\Seen"}), when)])
    await storage.append(content, [Delivery(inbox)])
    await storage.append(content, [Delivery(inbox, frozenset({"$Label"}))])
    source = await storage.list_mail(inbox)
    highest = await highest_modseq(storage, archive)
    pairs = await storage.copy_mail(inbox, [3, 1, 42], archive)
    assert pairs == [(1, 2), (3, 3)]
    copies = {e.uid: e for e in await storage.list_mail(archive)}
    assert copies[2].flags == source[0].flags and copies[2].internal_date == when
    assert copies[3].flags == frozenset({"$Label"})
    assert copies[3].internal_date == source[2].internal_date
    assert copies[2].content == content
    assert {copies[2].modseq, copies[3].modseq} == {highest + 1}
    assert await highest_modseq(storage, archive) == highest + 1
    assert await stored_copies(database_url, data_dir, content.sha256) == 1
    assert len(await storage.list_mail(inbox)) == 3
    assert await storage.copy_mail(inbox, [42], archive) == []
    assert await storage.copy_mail(inbox, [], archive) == []
    with pytest.raises(NotFound):
        await storage.copy_mail(inbox, [1], 999_999)


async def test_copy_into_the_same_mailbox(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 2, MESSAGE)
    assert await storage.copy_mail(inbox, [1, 2, 3], inbox) == [(1, 3), (2, 4)]
    assert [e.uid for e in await storage.list_mail(inbox)] == [1, 2, 3, 4]


async def test_move_is_copy_and_expunge_in_one_transaction(
    storage: Storage, user: User
) -> None:
    inbox, trash = await inbox_id(storage, user), await inbox_id(storage, user, "Trash")
    await fill(storage, inbox, 3, MESSAGE)
    await storage.set_flags(inbox, [2], ["\\Flagged"], "add")
    since = await highest_modseq(storage, inbox)
    pairs = await storage.copy_mail(inbox, [2, 3], trash, move=True)
    assert pairs == [(2, 1), (3, 2)]
    assert [e.uid for e in await storage.list_mail(inbox)] == [1]
    moved = await storage.list_mail(trash)
    assert [(e.uid, e.flags) for e in moved] == [(1, frozenset({"\\Flagged"})), (2, frozenset())]
    highest, changed, expunged = await storage.mail_changes(inbox, since)
    assert highest == since + 1 and changed == [] and expunged == [2, 3]
    # A move into an unknown mailbox changes nothing at all.
    with pytest.raises(NotFound):
        await storage.copy_mail(inbox, [1], 999_999, move=True)
    assert [e.uid for e in await storage.list_mail(inbox)] == [1]
    assert await highest_modseq(storage, inbox) == highest


async def test_mail_changes_after_appends_flags_and_expunges(
    storage: Storage, user: User
) -> None:
    inbox = await inbox_id(storage, user)
    start = await highest_modseq(storage, inbox)
    assert await storage.mail_changes(inbox, start) == (start, [], [])
    await fill(storage, inbox, 3, MESSAGE)
    highest, changed, expunged = await storage.mail_changes(inbox, start)
    assert [e.uid for e in changed] == [1, 2, 3] and expunged == []
    assert changed == await storage.list_mail(inbox)
    await storage.set_flags(inbox, [3], ["\\Seen"], "add")
    await storage.expunge(inbox, [1])
    now, changed, expunged = await storage.mail_changes(inbox, highest)
    assert now == highest + 2
    assert [(e.uid, e.flags) for e in changed] == [(3, frozenset({"\\Seen"}))]
    assert expunged == [1]
    assert await storage.mail_changes(inbox, now) == (now, [], [])
    _, changed, expunged = await storage.mail_changes(inbox, 0)
    assert [e.uid for e in changed] == [2, 3] and expunged == [1]
    with pytest.raises(NotFound):
        await storage.mail_changes(999_999, 0)


@pytest.mark.parametrize("expect_noop", [False, True])
async def test_set_flags_with_changes_is_set_flags_then_catch_up(
    storage: Storage, user: User, expect_noop: bool
) -> None:
    """An IMAP STORE and its catch-up in one transaction: the result is exactly what
    set_flags followed by mail_changes would answer, whether the STORE writes or (a right
    ``expect_noop`` hint) only reads, and with UNCHANGEDSINCE; new mail at or above
    ``claim_from`` is claimed as \\Recent (once: a second claim gets the raised floor)."""
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 4, MESSAGE)
    await storage.claim_recent(inbox)
    since = await highest_modseq(storage, inbox)
    # another session's work since this one caught up: a flag change, an expunge, new mail
    await storage.set_flags(inbox, [2], ["$Other"], "add")
    await storage.expunge(inbox, [4])
    await fill(storage, inbox, 1, MESSAGE)
    kw = {"expect_noop": expect_noop}
    (changed, modified), (highest, news, gone), floor = await storage.set_flags_with_changes(
        inbox, [1, 2], ["\\Seen"], "add", since_modseq=since, claim_from=5, **kw)
    assert ([e.uid for e in changed], modified, floor) == ([1, 2], [], 5)
    assert highest == await highest_modseq(storage, inbox) == changed[0].modseq
    assert (highest, news, gone) == await storage.mail_changes(inbox, since)
    assert [e.uid for e in news] == [1, 2, 5] and gone == [4]
    assert news[1].flags == frozenset({"\\Seen", "$Other"})
    # nothing to change (a right hint skips the write): still the catch-up; claimed already
    assert await storage.set_flags_with_changes(
        inbox, [1], ["\\Seen"], "add", since_modseq=since, claim_from=5, **kw) == (
        ([], []), (highest, news, gone), 6)
    assert await storage.claim_recent(inbox) == 6  # nothing new since: not raised again
    # nothing at or above claim_from (or no claim_from): no claim
    assert (await storage.set_flags_with_changes(
        inbox, [1], ["\\Seen"], "add", since_modseq=since, claim_from=6, **kw))[2] is None
    assert await storage.set_flags_with_changes(
        inbox, [1], ["$New"], "add", since_modseq=highest, unchanged_since=highest - 1,
        **kw) == (([], [1]), (highest, [], []), None)
    (changed, _), (now, news, _), _ = await storage.set_flags_with_changes(
        inbox, [3], ["$New"], "add", since_modseq=highest, **kw)
    assert now == highest + 1 and news == changed and [e.uid for e in news] == [3]
    with pytest.raises(NotFound):
        await storage.set_flags_with_changes(999_999, [1], ["\\Seen"], "add",
                                             since_modseq=0, **kw)


async def test_catch_up_claims_new_mail_once(storage: Storage, user: User) -> None:
    """catch_up is mail_changes plus, when it holds a UID at or above ``claim_from``, the
    \\Recent claim: the first session claiming gets the old floor, the next ones (whose
    claim reads only) the raised one; without new mail or ``claim_from`` nothing is claimed."""
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 2, MESSAGE)
    assert await storage.claim_recent(inbox) == 1
    since = await highest_modseq(storage, inbox)
    assert await storage.catch_up(inbox, since, claim_from=3) == (
        await storage.mail_changes(inbox, since), None)
    await fill(storage, inbox, 2, MESSAGE)  # UIDs 3 and 4
    changes = await storage.mail_changes(inbox, since)
    assert await storage.catch_up(inbox, since) == (changes, None)
    assert await storage.catch_up(inbox, since, claim_from=5) == (changes, None)
    assert await storage.catch_up(inbox, since, claim_from=4) == (changes, 3)
    assert await storage.catch_up(inbox, since, claim_from=3) == (changes, 5)
    assert await storage.claim_recent(inbox) == 5
    with pytest.raises(NotFound):
        await storage.catch_up(999_999, 0, claim_from=1)


async def test_append_many_with_changes_is_append_many_then_catch_up(
    storage: Storage, user: User
) -> None:
    """An IMAP APPEND to the selected mailbox and the session's catch-up after it, in one
    transaction: the new entries, then exactly what mail_changes answers (this append
    included), and the \\Recent claim of the new mail (the old floor; raised past it)."""
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 2, MESSAGE)
    assert await storage.claim_recent(inbox) == 1
    since = await highest_modseq(storage, inbox)
    await storage.set_flags(inbox, [1], ["$Other"], "add")  # another session's change
    content = await storage.store_content(MESSAGE)
    items = [(content, Delivery(inbox, frozenset({"\\Seen"})))]
    entries, changes, floor = await storage.append_many_with_changes(
        items, mailbox_id=inbox, since_modseq=since, claim_from=3, enforce_quota=True)
    assert [(e.uid, e.flags) for e in entries] == [(3, frozenset({"\\Seen"}))]
    assert changes == await storage.mail_changes(inbox, since) and floor == 3
    assert [e.uid for e in changes[1]] == [1, 3] and changes[0] == entries[0].modseq
    assert await storage.claim_recent(inbox) == 4
    # a read-only session (no claim_from) claims nothing
    entries, changes, floor = await storage.append_many_with_changes(
        items, mailbox_id=inbox, since_modseq=changes[0])
    assert [e.uid for e in entries] == [4] and changes[1] == entries and floor is None
    assert await storage.claim_recent(inbox) == 4
    with pytest.raises(NotFound):
        await storage.append_many_with_changes(
            [(content, Delivery(999_999))], mailbox_id=999_999, since_modseq=0, claim_from=1)


async def test_expunge_with_changes_is_catch_up_then_expunge(storage: Storage, user: User
                                                              ) -> None:
    """An IMAP EXPUNGE with its catch-up in one call: the changes are what mail_changes
    answered before the expunge; what goes is what the session knew as \\Deleted, as the
    catch-up left it (set or cleared elsewhere), never mail above ``highest_known``; new mail
    at or above ``claim_from`` is claimed as \\Recent."""
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 5, MESSAGE)
    assert await storage.claim_recent(inbox) == 1
    await storage.set_flags(inbox, [1, 3, 4], ["\\Deleted"], "add")  # as the session saw it
    since = await highest_modseq(storage, inbox)
    # another session's work: \\Deleted set on 2, cleared on 3, 4 expunged, 6 new, deleted
    await storage.set_flags(inbox, [2], ["\\Deleted"], "add")
    await storage.set_flags(inbox, [3], ["\\Deleted"], "remove")
    await storage.expunge(inbox, [4])
    await fill(storage, inbox, 1, MESSAGE)
    await storage.set_flags(inbox, [6], ["\\Deleted"], "add")
    before = await storage.mail_changes(inbox, since)
    removed, changes, floor = await storage.expunge_with_changes(
        inbox, [1, 3, 4], highest_known=5, since_modseq=since, claim_from=6)
    assert (removed, changes, floor) == ([1, 2], before, 6)
    assert [e.uid for e in await storage.list_mail(inbox)] == [3, 5, 6]
    assert await storage.claim_recent(inbox) == 7
    highest = await highest_modseq(storage, inbox)
    assert highest > before[0] and (await storage.mail_changes(inbox, before[0]))[2] == [1, 2]
    # nothing \\Deleted: no write, HIGHESTMODSEQ stays; no claim_from, no claim
    assert await storage.expunge_with_changes(
        inbox, [], highest_known=6, since_modseq=highest) == ([], (highest, [], []), None)
    assert await highest_modseq(storage, inbox) == highest
    with pytest.raises(NotFound):
        await storage.expunge_with_changes(999_999, [1], highest_known=1, since_modseq=0)


async def test_content_cache_round_trip(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    content = await storage.store_content(MESSAGE)
    await storage.append(content, [Delivery(inbox)])
    assert await storage.get_content_cache(content.sha256) == {}
    binary = bytes(range(256))
    await storage.set_content_cache(content.sha256, {"envelope": b"(NIL)", "raw": binary})
    await storage.set_content_cache(content.sha256, {"envelope": b'("x")'})
    assert await storage.get_content_cache(content.sha256) == {
        "envelope": b'("x")', "raw": binary
    }
    with pytest.raises(NotFound):
        await storage.set_content_cache("0" * 64, {"envelope": b""})
    await storage.expunge(inbox, [1])  # the content goes, and its cache with it
    assert await storage.get_content_cache(content.sha256) == {}
