"""SQLite: read-only requests run on a connection of their own (in a reader thread, or in the
event loop's thread when short: :mod:`mailwing.storage.sqlite.loopreads`), so they
never wait for the writer's batch (its savepoints, its fsync, another process's write lock),
while still seeing what they must see: every write whose caller has heard back, and a
content whose insertion was posted ahead (:meth:`SqliteRunner.post`) even before it has
committed. The writer is held deterministically inside its transaction by a script waiting
on an event; nothing here depends on timing (``wait_for`` only turns a hang into a failure).
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from mailwing.storage import Delivery, NotFound
from mailwing.storage.errors import StorageError
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.steps import Script, q
from tests.storage.conftest import HASH, inbox_id

GUARD = 30  # seconds before a hang is reported as a failure (never reached when correct)


@pytest.fixture
def store(sqlite_store: SqliteStorage) -> SqliteStorage:
    return sqlite_store


class Held:
    """A write request that inserts a domain, then holds the writer thread inside its
    transaction (uncommitted) until :meth:`release`."""

    def __init__(self, store: SqliteStorage, name: str) -> None:
        self.running, self._release = threading.Event(), threading.Event()
        self.task = asyncio.ensure_future(store._run(self._script(name)))

    def _script(self, name: str) -> Script[None]:
        yield q("INSERT INTO domains (name) VALUES ($1)", name)
        self.running.set()
        self._release.wait(GUARD)

    async def started(self) -> None:
        assert await asyncio.to_thread(self.running.wait, GUARD)

    def release(self) -> None:
        self._release.set()


async def test_a_read_is_answered_while_a_write_batch_holds_the_writer(
        store: SqliteStorage) -> None:
    """The read neither waits for the held write nor sees its uncommitted row; once the
    write has returned, the next read sees it."""
    held = Held(store, "held.test")
    try:
        await held.started()
        assert await asyncio.wait_for(store.get_domain("held.test"), GUARD) is None
        assert not held.task.done()
    finally:
        held.release()
    await held.task
    assert await store.get_domain("held.test") is not None


async def test_reads_go_to_the_reader_and_the_counters_add_all(store: SqliteStorage) -> None:
    """Reads from another thread than the event loop's go to the reader thread (those of
    the loop's thread run there when short: tests/storage/test_loop_reads.py)."""
    runner = store._runner
    reader_before, writer_before = runner._reader.requests, runner._executor.requests
    requests_before = store.commit_stats[1]

    def elsewhere() -> None:
        async def reads() -> None:
            await asyncio.gather(*(store.get_domain(f"d{n}.test") for n in range(4)))
        asyncio.run(reads())

    await store.get_domain("here.test")
    await asyncio.to_thread(elsewhere)
    await store.add_domain("added.test")
    assert runner._reader.requests - reader_before == 4
    assert runner._loop_reads.requests == 1
    assert runner._executor.requests - writer_before == 1
    assert store.commit_stats[1] - requests_before == 6


async def test_a_content_read_after_posted_bytes_waits_for_them(store: SqliteStorage) -> None:
    """A small content's bytes are posted to the writer without waiting (SMTP DATA). A read
    of that content issued next is queued behind them, even while the writer is held and
    other reads are answered; it returns the bytes once they are committed."""
    held = Held(store, "held.test")
    try:
        await held.started()
        body = b"Subject: posted\r\n\r\nstill on its way\r\n"
        info = await store.store_content(body)  # the insertion waits behind the held batch
        content_read = asyncio.ensure_future(store.read_content(info.sha256))
        # The reader thread answers in order: once this later read is answered, a content
        # read wrongly sent to the reader would have run already (and found nothing).
        assert await asyncio.wait_for(store.get_domain("other.test"), GUARD) is None
    finally:
        held.release()
    assert await asyncio.wait_for(content_read, GUARD) == body
    assert store._runner._posted == {}
    # committed now: content reads are reads again (short ones run in this thread)
    writer_before = store._runner._executor.requests
    assert await store.read_content(info.sha256) == body
    assert await store.read_contents([info]) == {info.sha256: body}
    assert await store.content_stored(info.sha256)
    assert store._runner._executor.requests == writer_before


async def test_a_failed_posting_no_longer_holds_reads_back(store: SqliteStorage) -> None:
    """A posted insertion that fails (here: a duplicate domain, standing in for any failed
    statement) still leaves the pending set; the read behind it finds nothing."""
    await store.add_domain("x.test")
    info = await store.store_content(b"Subject: kept\r\n\r\n")
    user, _ = await store.add_user("alice@example.org", HASH, create_domain=True)
    inbox = await inbox_id(store, user)
    await store.append(info, [Delivery(inbox)])
    assert store._runner._posted == {}
    store._runner.post(_failing_insert(), "f" * 64)
    with pytest.raises(NotFound):
        await store.read_content("f" * 64)
    assert store._runner._posted == {}


def _failing_insert() -> Script[None]:
    yield q("INSERT INTO domains (name) VALUES ('x.test')")


async def test_the_reader_connection_refuses_writes(store: SqliteStorage) -> None:
    """A script that writes although run as a read fails instead of taking the write lock
    behind the writer's back, and writes nothing."""
    def sneaky() -> Script[None]:
        yield q("INSERT INTO domains (name) VALUES ('sneaky.test')")

    with pytest.raises(StorageError, match="readonly"):
        await store._run(sneaky(), write=False)
    assert await store.get_domain("sneaky.test") is None


def _open_fds_to(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(path)):
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_close_closes_all_connections_in_their_threads(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    storage = await SqliteStorage.open(path, tmp_path / "data")
    await storage.upgrade()  # opens the writer's connection
    await storage.get_domain("x.test")  # opens the event loop thread's
    await asyncio.to_thread(asyncio.run, storage.get_domain("y.test"))  # the reader's
    runner = storage._runner
    assert runner._executor._conn is not None and runner._reader._conn is not None
    loop_reads = runner._loop_reads._executor
    assert loop_reads is not None and loop_reads._conn is not None
    assert _open_fds_to(path) >= 3
    await storage.close()
    assert runner._executor._conn is None and runner._reader._conn is None
    assert loop_reads._conn is None
    assert not runner._thread.is_alive() and not runner._reader_thread.is_alive()
    assert _open_fds_to(path) == 0
    with pytest.raises(StorageError, match="closed"):
        await storage.get_domain("x.test")
