"""Concurrent deliveries: distinct, gap-free UIDs across processes; group commit isolation."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage, open_storage
from mailwing.storage.sqlite import SqliteStorage
from tests.storage.conftest import inbox_id

PROCESSES = 4
PER_PROCESS = 50


async def _deliver(
    url: str, data_dir: str, mailbox_id: int, worker: int, start: float
) -> list[int]:
    storage = await open_storage(url, data_dir=Path(data_dir))
    try:
        await asyncio.sleep(max(0.0, start - time.time()))
        uids = []
        for i in range(PER_PROCESS):
            # Half the messages are identical across workers: dedupe races too.
            body = b"same\r\n" if i % 2 else f"worker {worker} message {i}\r\n".encode()
            info = await storage.store_content(b"Subject: race\r\n\r\n" + body)
            [entry] = await storage.append(info, [Delivery(mailbox_id)])
            uids.append(entry.uid)
        return uids
    finally:
        await storage.close()


def deliver_in_process(url: str, data_dir: str, mailbox_id: int, worker: int, start: float
                       ) -> list[int]:
    return asyncio.run(_deliver(url, data_dir, mailbox_id, worker, start))


@pytest.mark.slow
async def test_appends_from_several_processes_get_distinct_uids(
    storage: Storage, user: User, database_url: str, data_dir: Path
) -> None:
    inbox = await inbox_id(storage, user)
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 2.0  # let every process import and connect first
    args = [(database_url, str(data_dir), inbox, w, start) for w in range(PROCESSES)]
    with ctx.Pool(PROCESSES) as pool:
        results = await asyncio.to_thread(pool.starmap, deliver_in_process, args)
    for uids in results:
        assert uids == sorted(uids)  # each process sees its own UIDs increase
    everything = sorted(uid for uids in results for uid in uids)
    assert everything == list(range(1, PROCESSES * PER_PROCESS + 1))
    entries = await storage.list_mail(inbox)
    assert [e.uid for e in entries] == everything
    box = await storage.get_mailbox(user.id, "INBOX")
    assert box is not None
    assert box.uidnext == PROCESSES * PER_PROCESS + 1
    assert box.highestmodseq == 1 + PROCESSES * PER_PROCESS
    assert len({e.modseq for e in entries}) == len(entries)
    for entry in entries[:5]:
        assert (await storage.read_content(entry.content.sha256)).startswith(b"Subject: race")


async def test_concurrent_appends_in_one_process(storage: Storage, user: User) -> None:
    """Many appends at once (one group commit for SQLite); a failing one fails alone."""
    inbox = await inbox_id(storage, user)
    info = await storage.store_content(b"Subject: burst\r\n\r\n")
    stats_before = storage.commit_stats if isinstance(storage, SqliteStorage) else (0, 0)
    calls = [storage.append(info, [Delivery(inbox)]) for _ in range(30)]
    calls.insert(10, storage.append(info, [Delivery(inbox), Delivery(987_654)]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[10], NotFound)
    good = [r for i, r in enumerate(results) if i != 10]
    uids = sorted(entries[0].uid for entries in good)  # type: ignore[index]
    assert uids == list(range(1, 31))
    assert len(await storage.list_mail(inbox)) == 30
    if isinstance(storage, SqliteStorage):
        transactions, requests = (
            a - b for a, b in zip(storage.commit_stats, stats_before, strict=True)
        )
        assert requests >= 31
        assert transactions < requests  # some appends shared a commit


async def test_sqlite_reads_do_not_wait_for_writes_queued_with_them(tmp_path: Path) -> None:
    """A read queued beside a write is answered before that write's transaction ends (it
    need not wait for its commit and fsync): here the write holds the database thread
    until the read has been answered, which would never happen if they shared it."""
    import threading

    from mailwing.storage.steps import Script, q

    storage = await SqliteStorage.open(tmp_path / "mail.db", tmp_path / "data")
    try:
        first_running, release_first, release_second = (
            threading.Event(), threading.Event(), threading.Event())

        def hold(started: threading.Event | None, release: threading.Event) -> Script[int]:
            rows = yield q("SELECT 1")
            if started is not None:
                started.set()
            release.wait(60)
            return int(rows[0][0])

        def read() -> Script[int]:
            rows = yield q("SELECT 2")
            return int(rows[0][0])

        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(storage._run(hold(first_running, release_first)))
        await loop.run_in_executor(None, first_running.wait, 60)  # the thread is busy now
        second = asyncio.ensure_future(storage._run(hold(None, release_second)))
        reader = asyncio.ensure_future(storage._run(read(), write=False))
        await asyncio.sleep(0)  # both are queued behind the first: one batch
        release_first.set()
        assert await first == 1
        assert await asyncio.wait_for(reader, 30) == 2
        assert not second.done()
        release_second.set()
        assert await second == 1
    finally:
        release_first.set()
        release_second.set()
        await storage.close()


async def test_concurrent_flag_changes_lose_nothing(storage: Storage, user: User) -> None:
    """STOREs at once on the same messages (PostgreSQL: on several connections, each waiting
    for the mailbox lock the others hold): none overwrites another's flags, each gets its own
    MODSEQ, and of several with the same UNCHANGEDSINCE exactly one succeeds."""
    inbox = await inbox_id(storage, user)
    for i in range(2):
        info = await storage.store_content(b"Subject: %d\r\n\r\nflags race\r\n" % i)
        await storage.append(info, [Delivery(inbox)])
    box = await storage.get_mailbox(user.id, "INBOX")
    assert box is not None
    start = box.highestmodseq
    results = await asyncio.gather(*(
        storage.set_flags(inbox, [1, 2], [f"$K{n}"], "add") for n in range(12)))
    modseqs = []
    for changed, modified in results:
        assert modified == [] and [e.uid for e in changed] == [1, 2]
        assert len({e.modseq for e in changed}) == 1
        modseqs.append(changed[0].modseq)
    assert sorted(modseqs) == list(range(start + 1, start + 13))
    everything = {f"$K{n}" for n in range(12)}
    assert all(e.flags == everything for e in await storage.list_mail(inbox))
    highest, changed, gone = await storage.mail_changes(inbox, start)
    assert highest == start + 12 and gone == []
    assert [(e.uid, e.modseq, e.flags) for e in changed] == [
        (1, start + 12, everything), (2, start + 12, everything)]

    results = await asyncio.gather(*(
        storage.set_flags(inbox, [1], [f"$U{n}"], "add", unchanged_since=highest)
        for n in range(8)))
    winners = [changed for changed, modified in results if changed]
    assert len(winners) == 1
    assert sorted(modified for changed, modified in results if not changed) == [[1]] * 7
    entry = (await storage.list_mail(inbox))[0]
    extra = entry.flags - everything
    assert len(extra) == 1 and winners[0][0].flags == everything | extra


async def test_concurrent_appends_to_several_users(storage: Storage, user: User) -> None:
    """One content to two users' INBOXes, many at once and listed in either order: the
    mailbox and user rows are locked in one order (no deadlock), UIDs are gap-free in each
    mailbox and the usage counters count every copy."""
    bob, _ = await storage.add_user("bob@example.org", "x")
    boxes = [await inbox_id(storage, user), await inbox_id(storage, bob)]
    info = await storage.store_content(b"Subject: both\r\n\r\nto two users\r\n")
    calls = [storage.append(info, [Delivery(b) for b in (boxes if n % 2 else boxes[::-1])])
             for n in range(20)]
    results = await asyncio.gather(*calls)
    for box in boxes:
        uids = sorted(e.uid for entries in results for e in entries if e.mailbox_id == box)
        assert uids == list(range(1, 21))
        assert [e.uid for e in await storage.list_mail(box)] == uids
    for who in (user, bob):
        assert await storage.usage(who.id) == (20, 20 * info.size)


async def test_concurrent_recent_claims(storage: Storage, user: User) -> None:
    """Sessions claiming \\Recent at once: exactly one gets the new messages."""
    inbox = await inbox_id(storage, user)
    info = await storage.store_content(b"Subject: recent\r\n\r\n")
    for _ in range(3):
        await storage.append(info, [Delivery(inbox)])
    floors = await asyncio.gather(*(storage.claim_recent(inbox) for _ in range(10)))
    assert sorted(floors) == [1] + [4] * 9


async def test_expunge_of_a_contents_last_entry_races_appends_of_it(
        storage: Storage, user: User) -> None:
    """EXPUNGE of the last entry of a content while appends link that content again (SMTP's
    one-statement delivery, an IMAP APPEND, a MULTIAPPEND): the writers take their locks in
    one order, so none fails with a deadlock. Each append either links the content (its
    bytes then stay readable) or fails with NotFound (they were removed first); the usage
    counters match what is listed."""
    inbox = await inbox_id(storage, user)
    archive = await inbox_id(storage, user, "Archive")
    other = await storage.store_content(b"Subject: other\r\n\r\nx\r\n")
    for n in range(12):
        info = await storage.store_content(f"Subject: race {n}\r\n\r\nbody\r\n".encode())
        [entry] = await storage.append(info, [Delivery(inbox)])
        calls = [
            storage.append(info, [Delivery(archive)]),
            storage.expunge(inbox, [entry.uid]),
            storage.append_many([(info, Delivery(inbox, frozenset({"\\Seen"})))],
                                enforce_quota=True),
            storage.append_many([(other, Delivery(archive)), (info, Delivery(archive))]),
            storage.append(info, [Delivery(inbox), Delivery(archive)]),
        ]
        if n % 2:
            calls.reverse()
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            assert isinstance(result, list | NotFound), result
    listed = await storage.list_mail(inbox) + await storage.list_mail(archive)
    for entry in listed:
        assert (await storage.read_content(entry.content.sha256)).startswith(b"Subject: ")
    assert await storage.usage(user.id) == (len(listed), sum(e.content.size for e in listed))


async def test_concurrent_expunges_of_one_mailbox(storage: Storage, user: User) -> None:
    """Overlapping EXPUNGEs and STOREs at once (PostgreSQL: each EXPUNGE waits for the
    mailbox lock and starts over when another writer committed meanwhile): every entry is
    reported removed by exactly one of them, each with its own MODSEQ, and the counters
    follow."""
    inbox = await inbox_id(storage, user)
    info = await storage.store_content(b"Subject: many\r\n\r\n")
    for _ in range(24):
        await storage.append(info, [Delivery(inbox)])
    sets = [list(range(n, n + 6)) for n in range(1, 20, 2)]
    calls = [storage.expunge(inbox, uids) for uids in sets]
    calls += [storage.set_flags(inbox, range(1, 25), ["\\Deleted"], "add") for _ in range(3)]
    results = await asyncio.gather(*calls)
    removed = [uid for uids in results[: len(sets)] for uid in uids]  # type: ignore[union-attr]
    assert sorted(removed) == list(range(1, 25))
    left = await storage.list_mail(inbox)
    assert [e.uid for e in left] == []
    highest, _changed, gone = await storage.mail_changes(inbox, 24)
    assert sorted(gone) == list(range(1, 25))
    assert await storage.usage(user.id) == (0, 0)
    box = await storage.get_mailbox_by_id(inbox)
    assert box is not None and box.highestmodseq == highest
