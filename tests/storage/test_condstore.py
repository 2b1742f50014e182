"""RFC 7162 data side: mod-sequences strictly increasing per mailbox across storage instances
and processes; expunged UIDs remembered for VANISHED, with a pruned window that is reported
as such (``vanished_since`` returns None) rather than answered incompletely."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage, open_storage
from tests.storage.conftest import fill, highest_modseq, inbox_id

MESSAGE = b"From: a@example.org\r\nSubject: modseq\r\n\r\nbody\r\n"
WORKERS = 3
ROUNDS = 15


async def test_vanished_since_lists_expunges_after_a_modseq(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 6, MESSAGE)
    start = await highest_modseq(storage, inbox)
    assert await storage.vanished_since(inbox, start) == []
    assert await storage.expunge(inbox, [2, 3]) == [2, 3]
    middle = await highest_modseq(storage, inbox)
    assert middle == start + 1
    await storage.expunge(inbox, [5])
    assert await storage.vanished_since(inbox, start) == [2, 3, 5]
    assert await storage.vanished_since(inbox, middle) == [5]
    assert await storage.vanished_since(inbox, middle + 1) == []
    with pytest.raises(NotFound):
        await storage.vanished_since(inbox + 999, 0)


async def test_moves_are_remembered_as_expunges(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    archive = await inbox_id(storage, user, "Archive")
    await fill(storage, inbox, 3, MESSAGE)
    start = await highest_modseq(storage, inbox)
    await storage.copy_mail(inbox, [1, 3], archive, move=True)
    assert await storage.vanished_since(inbox, start) == [1, 3]
    assert await storage.vanished_since(archive, 0) == []


async def test_pruning_keeps_the_newest_and_marks_older_history_lost(
    storage: Storage, user: User
) -> None:
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 10, MESSAGE)
    base = await highest_modseq(storage, inbox)
    for uid in range(1, 7):  # six expunges, modseq base+1 .. base+6
        await storage.expunge(inbox, [uid])
    assert await storage.prune_expunged(inbox, 10) == 0  # within the bound: nothing goes
    assert await storage.vanished_since(inbox, base) == [1, 2, 3, 4, 5, 6]
    assert await storage.prune_expunged(inbox, 2) == 4  # keep the newest two (uids 5, 6)
    assert await storage.vanished_since(inbox, base + 4) == [5, 6]
    assert await storage.vanished_since(inbox, base + 5) == [6]
    assert await storage.vanished_since(inbox, base + 3) is None  # would miss uid 4
    assert await storage.vanished_since(inbox, 0) is None
    assert await storage.prune_expunged(inbox, 0) == 2
    assert await storage.vanished_since(inbox, base + 5) is None
    assert await storage.vanished_since(inbox, base + 6) == []
    # Pruning never touches mail or the counters.
    assert [e.uid for e in await storage.list_mail(inbox)] == [7, 8, 9, 10]
    assert await highest_modseq(storage, inbox) == base + 6


async def test_two_storage_instances_share_one_sequence(
    storage: Storage, user: User, database_url: str, data_dir: Path
) -> None:
    """A second storage object (another worker or node) sees and continues the sequence."""
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 4, MESSAGE)
    other = await open_storage(database_url, data_dir=data_dir)
    try:
        seen = await highest_modseq(storage, inbox)
        changed, _ = await other.set_flags(inbox, [2], ["\\Seen"], "add")
        assert changed[0].modseq == seen + 1
        highest, entries, gone = await storage.mail_changes(inbox, seen)
        assert (highest, [e.uid for e in entries], gone) == (seen + 1, [2], [])
        await storage.expunge(inbox, [3])
        assert await other.vanished_since(inbox, seen + 1) == [3]
        changed, modified = await other.set_flags(
            inbox, [1, 2], ["$X"], "add", unchanged_since=seen)
        assert [e.uid for e in changed] == [1] and modified == [2]
        assert changed[0].modseq == seen + 3
        assert await highest_modseq(storage, inbox) == seen + 3
    finally:
        await other.close()


async def _churn(url: str, data_dir: str, mailbox_id: int, worker: int, start: float
                 ) -> list[int]:
    """Flag changes on the worker's own messages, an append and an expunge per round;
    return every modseq this worker was given, in order."""
    storage = await open_storage(url, data_dir=Path(data_dir))
    got: list[int] = []
    try:
        await asyncio.sleep(max(0.0, start - time.time()))
        content = await storage.store_content(f"Subject: w{worker}\r\n\r\nx\r\n".encode())
        for i in range(ROUNDS):
            [entry] = await storage.append(content, [Delivery(mailbox_id)])
            got.append(entry.modseq)
            changed, _ = await storage.set_flags(mailbox_id, [entry.uid], [f"$R{i}"], "add")
            got.append(changed[0].modseq)
            if i % 3 == 2:
                await storage.expunge(mailbox_id, [entry.uid])
                box = await storage.get_mailbox_by_id(mailbox_id)
                assert box is not None
                got.append(-box.highestmodseq)  # an upper bound only: others may follow
        return got
    finally:
        await storage.close()


def churn_in_process(url: str, data_dir: str, mailbox_id: int, worker: int, start: float
                     ) -> list[int]:
    return asyncio.run(_churn(url, data_dir, mailbox_id, worker, start))


@pytest.mark.slow
async def test_modseqs_strictly_increase_across_processes(
    storage: Storage, user: User, database_url: str, data_dir: Path
) -> None:
    inbox = await inbox_id(storage, user)
    base = await highest_modseq(storage, inbox)
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 2.0
    args = [(database_url, str(data_dir), inbox, w, start) for w in range(WORKERS)]
    with ctx.Pool(WORKERS) as pool:
        results = await asyncio.to_thread(pool.starmap, churn_in_process, args)
    given = []
    for got in results:
        exact = [m for m in got if m > 0]
        assert exact == sorted(exact) and len(set(exact)) == len(exact)
        given += exact
    # Every transaction got its own value: no two appends/STOREs share one.
    assert len(set(given)) == len(given) == WORKERS * ROUNDS * 2
    expunges = WORKERS * (ROUNDS // 3)
    final = await highest_modseq(storage, inbox)
    assert final == base + len(given) + expunges  # one per transaction, no gaps
    assert max(given) <= final
    gone = await storage.vanished_since(inbox, base)
    assert gone is not None and len(gone) == expunges
    highest, entries, expunged = await storage.mail_changes(inbox, base)
    assert highest == final and sorted(expunged) == gone
    assert len(entries) == WORKERS * ROUNDS - expunges


async def test_mail_changes_stays_complete_after_pruning(storage: Storage, user: User) -> None:
    """A session (or listing cache) behind the pruned window still learns every expunge."""
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 6, MESSAGE)
    old = await highest_modseq(storage, inbox)
    for uid in (2, 5):
        await storage.expunge(inbox, [uid])
    recent = await highest_modseq(storage, inbox)
    await storage.expunge(inbox, [6])
    await storage.prune_expunged(inbox, 1)
    highest, _, gone = await storage.mail_changes(inbox, old)
    assert highest == recent + 1 and gone == [2, 5, 6]
    assert (await storage.mail_changes(inbox, recent))[2] == [6]  # still within the window
