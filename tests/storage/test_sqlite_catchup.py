"""SQLite's one-statement catch-up (:mod:`mailwing.storage.sqlite.catchup`) answers exactly
what the portable three-statement script (:func:`mailwing.storage.scripts_mail.mail_changes`)
answers, on a real database: from every HIGHESTMODSEQ a session may hold, through flag
changes, keywords, appends, expunges, a pruned expunge memory (``vanished_floor``) and a
missing mailbox; and it is what the SQLite storage runs, in one statement."""

from __future__ import annotations

import pytest

from mailwing.storage import Delivery, scripts_mail
from mailwing.storage.errors import NotFound
from mailwing.storage.sqlite import SqliteStorage, catchup
from mailwing.storage.steps import Query, Script, q
from tests.storage.conftest import HASH, inbox_id


async def _both_agree(store: SqliteStorage, box: int) -> int:
    """Compare the two scripts from every modseq up to the mailbox's; the highest."""
    found = await store.get_mailbox_by_id(box)
    assert found is not None
    for since in range(found.highestmodseq + 2):
        portable = await store._read(scripts_mail.mail_changes, box, since)
        one = await store._read(catchup.mail_changes, box, since)
        assert one == portable, since
    return found.highestmodseq


async def test_the_answers_are_the_portable_scripts(sqlite_store: SqliteStorage) -> None:
    store = sqlite_store
    user, _ = await store.add_user("catch@example.org", HASH, create_domain=True)
    box = await inbox_id(store, user)
    await _both_agree(store, box)  # empty
    uids = []
    for i in range(12):
        content = await store.store_content(
            b"From: a@example.net\r\nSubject: n%d\r\nDate: Fri, 4 Dec 2026 10:00:00 +0000\r\n"
            b"\r\nbody %d\r\n" % (i, i))
        uids += [e.uid for e in await store.append(content, [Delivery(box)])]
    await store.set_flags(box, uids[:4], ["\\Seen", "$Label1"], "add")
    await store.set_flags(box, uids[2:6], ["\\Flagged"], "add")
    await store.set_flags(box, uids[3:4], ["\\Seen"], "remove")
    # expunges at three modseqs, with other changes between them
    await store.expunge(box, [uids[7], uids[11]])
    await store.set_flags(box, uids[8:9], ["$Label2"], "add")
    await store.expunge(box, [uids[1]])
    await store.set_flags(box, uids[0:1], ["\\Answered"], "add")
    await store.expunge(box, [uids[9]])
    gone = {uids[1], uids[7], uids[9], uids[11]}
    changes = await store._read(catchup.mail_changes, box, 0)
    assert [e.uid for e in changes[1]] == sorted(set(uids) - gone)
    assert changes[2] == sorted(gone)
    highest = await _both_agree(store, box)
    # the memory of expunges pruned below the second one: a session older than that gets
    # every absent UID, a newer one only what was expunged after its modseq
    floor = highest - 2
    await store._run(_prune(box, floor), write=True)
    assert await _both_agree(store, box) == highest
    old = await store._read(catchup.mail_changes, box, floor - 1)
    assert old[2] == sorted(gone)
    recent = await store._read(catchup.mail_changes, box, floor)
    assert recent[2] == [uids[9]]


def _prune(box: int, floor: int) -> Script[None]:
    yield q("DELETE FROM expunged WHERE mailbox_id = $1 AND modseq < $2", box, floor)
    yield q("UPDATE mailboxes SET vanished_floor = $2 WHERE id = $1", box, floor)


async def test_a_missing_mailbox_is_not_found(sqlite_store: SqliteStorage) -> None:
    with pytest.raises(NotFound):
        await sqlite_store._read(catchup.mail_changes, 4242, 0)


async def test_the_sqlite_storage_catches_up_in_one_statement(
        sqlite_store: SqliteStorage) -> None:
    store = sqlite_store
    user, _ = await store.add_user("one@example.org", HASH, create_domain=True)
    box = await inbox_id(store, user)
    content = await store.store_content(b"Subject: one\r\n\r\nbody\r\n")
    await store.append(content, [Delivery(box)])
    script = store._mail_changes_script(box, 0)
    step = next(script)
    assert isinstance(step, Query) and "json_group_array" in step.sql
    script.close()
    highest, entries, gone = await store.mail_changes(box, 0)
    assert [e.uid for e in entries] == [1] and gone == [] and highest >= 1
