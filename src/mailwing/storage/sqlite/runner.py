"""The SQLite database threads: run transaction scripts off the event loop, with group commit.

Each thread owns one ``sqlite3`` connection (the module's objects are bound to their thread);
coroutines hand it scripts through a queue and await a future. SQLite admits one writer at a
time anyway, so a single writer thread costs no concurrency, and it makes *group commit* natural:
while the thread is busy (an fsync takes a while), new requests queue up; the next round takes
all of them and hands them to the :class:`~.executor.SqliteExecutor` as one batch: one
transaction, one savepoint per request, one ``COMMIT`` (one fsync with ``synchronous=FULL``).
Futures are resolved only after that commit: an SMTP ``250`` is never sent for a message
that a crash could still lose. (A batch made only of flag changes, expunges and \\Recent
claims commits with ``synchronous=NORMAL`` under the default ``storage.fsync_flag_changes``
policy: still safe against a crash of the process, see :mod:`.executor`.)

Read-only requests run at once in the calling thread (the event loop's) when they are short,
on a read-only connection of their own (:mod:`.loopreads`); the others go to a second thread
with a second connection, opened read-only (``query_only``), batched the same way (the reads
queued meanwhile share one read transaction). WAL mode lets them read while the writer holds
the write lock, so a read never waits for someone else's write batch: its savepoints, its
fsync, nor the other worker process's write lock (issue #9: an SMTP RCPT, a query of 0.1 ms,
waited 3 to 8 ms behind the deliveries' commits). A read still sees every write whose caller
has heard back (futures are resolved after the COMMIT, and each read batch starts its own
snapshot). The one exception is *posted* work (:meth:`SqliteRunner.post`): nobody waits for
it, so nothing guarantees it has committed when a read of the content it inserts comes; such
a read names the contents it reads (``after``) and, while a posting of one of them is queued
or uncommitted, goes through the writer's queue as before, behind it. Posted work inserts
content bytes only, so no other read can tell whether it has committed.

After each commit, the mailbox ids whose HIGHESTMODSEQ the committed requests raised (their
:class:`~mailwing.storage.steps.Changed` steps) go to the ``on_change`` callback, still in the
database thread and before any caller hears back; it wakes ``wait_for_change`` callers here
and in other processes (:mod:`.notify`).

How a batch is executed (connection settings, savepoints, error mapping) lives in
:mod:`.executor`, which has no event loop, so that one-shot commands run the very same code
in the calling thread (:mod:`.direct`).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from mailwing.storage.blobs import BlobStore
from mailwing.storage.errors import StorageError
from mailwing.storage.sqlite.executor import SqliteExecutor, Work, map_sqlite_error
from mailwing.storage.sqlite.loopreads import LoopReads
from mailwing.storage.sqlite.writelock import WriterQueue
from mailwing.storage.steps import Script

__all__ = ["SqliteRunner", "map_sqlite_error"]

T = TypeVar("T")

MAX_BATCH = 128  # requests that may share one transaction
#: How long posted work alone (a content's bytes, see post()) waits for the request that
#: links it to share its commit; it is committed by itself after that.
POST_WAIT = 0.05


class _Job(Work):
    __slots__ = ("future", "key", "loop")

    def __init__(self, script: Script[Any], write: bool, *,
                 loop: asyncio.AbstractEventLoop | None,
                 future: asyncio.Future[Any] | None) -> None:
        super().__init__(script, write)
        # both None: posted, nobody waits (see post())
        self.loop = loop
        self.future = future
        #: posted work: the content it inserts (see SqliteRunner.post)
        self.key: str | None = None


class SqliteRunner:
    """Owns the database threads (a writer, a reader). ``await run(script, write=...)``;
    ``await close()`` at the end."""

    def __init__(
        self, path: Path, blobs: BlobStore, *, busy_timeout: float = 5.0,
        on_change: Callable[[set[int]], None] | None = None,
    ) -> None:
        self._executor = SqliteExecutor(path, blobs, busy_timeout=busy_timeout,
                                        on_change=on_change)
        self._reader = SqliteExecutor(path, blobs, busy_timeout=busy_timeout, read_only=True)
        self._loop_reads = LoopReads(path, blobs, busy_timeout=busy_timeout)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._reads: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        #: contents whose posted insertion is queued or not yet committed, and how many times
        self._posted: dict[str, int] = {}
        self._posted_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._main, name="mailwing-sqlite", daemon=True)
        self._reader_thread = threading.Thread(
            target=self._read_main, name="mailwing-sqlite-read", daemon=True)
        self._thread.start()
        self._reader_thread.start()

    @property
    def transactions(self) -> int:
        """Transactions run so far by both threads and the loop's reads (fewer than
        :attr:`requests`: group commit, and reads sharing a read transaction)."""
        return (self._executor.transactions + self._reader.transactions
                + self._loop_reads.transactions)

    @property
    def requests(self) -> int:
        return self._executor.requests + self._reader.requests + self._loop_reads.requests

    @property
    def write_lock(self) -> WriterQueue | None:
        """The writer thread's place in the writers' queue (its counters: :mod:`.writelock`)."""
        return self._executor.writers

    async def run(self, script: Script[T], *, write: bool, after: Iterable[str] = ()) -> T:
        """Run ``script``. A read (``write`` false) runs here if it is short
        (:mod:`.loopreads`), otherwise on the reader thread; unless it reads one of the
        contents ``after`` while its posted insertion is pending (see :meth:`post`): then
        it goes in the writer's queue, behind that insertion."""
        if self._closed:
            script.close()
            raise StorageError("storage is closed")
        behind = write or self._behind_posted(after)
        if not behind:
            here = Work(script, False)
            if self._loop_reads.take(here):  # run now, in this thread (see .loopreads)
                if here.error is not None:
                    raise here.error
                result: T = here.result
                return result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(script, write, loop=loop, future=future)
        (self._queue if behind else self._reads).put(job)
        return await future

    def post(self, script: Script[Any], key: str) -> None:
        """Queue a write ``script`` that inserts the content ``key`` and return at once;
        nobody hears how it ends. The writer's queue is run in order, so any write queued
        after this one commits in the same transaction as it or a later one, and so does a
        read that names ``key`` (:mod:`.inline` relies on that); other reads cannot see the
        content anyway. Posted work waits up to :data:`POST_WAIT` for a request to share its
        commit with. ``script`` must run exactly one statement (it runs without a savepoint,
        see :mod:`.executor`) and change nothing but the bytes of ``key``."""
        if self._closed:
            script.close()
            raise StorageError("storage is closed")
        job = _Job(script, True, loop=None, future=None)
        job.single = True
        job.key = key
        with self._posted_lock:
            self._posted[key] = self._posted.get(key, 0) + 1
        self._queue.put(job)

    async def close(self) -> None:
        """Serve what is queued, then close both connections (each in its own thread)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._reads.put(None)
            await asyncio.to_thread(self._thread.join)
            await asyncio.to_thread(self._reader_thread.join)
            self._loop_reads.close()

    def _behind_posted(self, keys: Iterable[str]) -> bool:
        if not self._posted:  # the common case, read without the lock (a dict is GIL-safe)
            return False
        with self._posted_lock:
            return any(key in self._posted for key in keys)

    def _committed(self, group: list[_Job]) -> None:
        """Posted work of ``group`` has committed (or failed): reads of its contents may go
        to the reader again, whose next snapshot includes it."""
        keys = [job.key for job in group if job.key is not None]
        if not keys:
            return
        with self._posted_lock:
            for key in keys:
                left = self._posted[key] - 1
                if left:
                    self._posted[key] = left
                else:
                    del self._posted[key]

    # -- the thread -----------------------------------------------------------------------
    def _main(self) -> None:
        stopping = False
        while not stopping:
            job = self._queue.get()
            if job is None:
                break
            # no commit for posted work alone: the request using it is coming
            batch, stopping = _take_batch(self._queue, job, linger=_only_posted)
            for group in _reads_first(batch):
                self._executor.run_batch(group)  # committed when it returns
                self._committed(group)
                _answer(group)
        self._executor.close()

    def _read_main(self) -> None:
        """The reader thread: whatever reads queued up meanwhile share a read transaction."""
        stopping = False
        while not stopping:
            job = self._reads.get()
            if job is None:
                break
            batch, stopping = _take_batch(self._reads, job, linger=_never)
            self._reader.run_batch(batch)
            _answer(batch)
        self._reader.close()


def _take_batch(jobs: queue.SimpleQueue[_Job | None], first: _Job, *,
                linger: Callable[[list[_Job]], bool]) -> tuple[list[_Job], bool]:
    """``first`` and whatever queued up behind it, up to :data:`MAX_BATCH`; while
    ``linger(batch)`` holds, waits up to :data:`POST_WAIT` for more. Also whether the stop
    marker (None) was taken."""
    batch = [first]
    while len(batch) < MAX_BATCH:
        try:
            nxt = jobs.get_nowait()
        except queue.Empty:
            if not linger(batch):
                break
            try:
                nxt = jobs.get(timeout=POST_WAIT)
            except queue.Empty:
                break
        if nxt is None:
            return batch, True
        batch.append(nxt)
    return batch, False


def _never(batch: list[_Job]) -> bool:
    return False


def _answer(group: list[_Job]) -> None:
    for done in group:
        if done.loop is not None:
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone
                done.loop.call_soon_threadsafe(_resolve, done)


def _reads_first(batch: list[_Job]) -> list[list[_Job]]:
    """Reads queued beside writes go first, as a batch (a read transaction) of their own,
    answered at once: they need not wait for the writes' commit and its fsync (queued
    concurrently, seeing the state before those writes is as right as seeing it after).
    Not when the round holds posted work: a read queued after a posted insertion must see
    it (:mod:`.inline`), so such a round keeps its order. (Only such reads come here now,
    content reads behind a pending posting; the others go to the reader thread.)"""
    reads = [job for job in batch if not job.write]
    if not reads or len(reads) == len(batch) or any(job.loop is None for job in batch):
        return [batch]
    return [reads, [job for job in batch if job.write]]


def _only_posted(batch: list[_Job]) -> bool:
    return all(job.loop is None for job in batch)


def _resolve(job: _Job) -> None:
    if job.future is None or job.future.done():  # the caller was cancelled
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)
