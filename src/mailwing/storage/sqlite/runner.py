"""The SQLite database thread: runs transaction scripts off the event loop, with group commit.

One thread owns one ``sqlite3`` connection (the module's objects are bound to their thread);
coroutines hand it scripts through a queue and await a future. SQLite admits one writer at a
time anyway, so a single thread costs no concurrency, and it makes *group commit* natural:
while the thread is busy (an fsync takes a while), new requests queue up; the next round takes
all of them and hands them to the :class:`~.executor.SqliteExecutor` as one batch: one
transaction, one savepoint per request, one ``COMMIT`` (one fsync with ``synchronous=FULL``).
Futures are resolved only after that commit: an SMTP ``250`` is never sent for a message
that a crash could still lose. (A batch made only of flag changes, expunges and \\Recent
claims commits with ``synchronous=NORMAL`` under the default ``storage.fsync_flag_changes``
policy: still safe against a crash of the process, see :mod:`.executor`.) Read-only
requests taken in the same round run first, in a read transaction of their own, and are
answered before the writes start (unless the round holds posted work), so a read never waits
for someone else's fsync.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mailwing.storage.blobs import BlobStore
from mailwing.storage.errors import StorageError
from mailwing.storage.sqlite.executor import SqliteExecutor, Work, map_sqlite_error
from mailwing.storage.steps import Script

__all__ = ["SqliteRunner", "map_sqlite_error"]

T = TypeVar("T")

MAX_BATCH = 128  # requests that may share one transaction
#: How long posted work alone (a content's bytes, see post()) waits for the request that
#: links it to share its commit; it is committed by itself after that.
POST_WAIT = 0.05


class _Job(Work):
    __slots__ = ("future", "loop")

    def __init__(self, script: Script[Any], write: bool, *,
                 loop: asyncio.AbstractEventLoop | None,
                 future: asyncio.Future[Any] | None) -> None:
        super().__init__(script, write)
        # both None: posted, nobody waits (see post())
        self.loop = loop
        self.future = future


class SqliteRunner:
    """Owns the database thread. ``await run(script)``; ``await close()`` at the end."""

    def __init__(
        self, path: Path, blobs: BlobStore, *, busy_timeout: float = 5.0,
        on_change: Callable[[set[int]], None] | None = None,
    ) -> None:
        self._executor = SqliteExecutor(path, blobs, busy_timeout=busy_timeout,
                                        on_change=on_change)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._main, name="mailwing-sqlite", daemon=True)
        self._thread.start()

    @property
    def transactions(self) -> int:
        """Transactions run so far (fewer than :attr:`requests`: group commit at work)."""
        return self._executor.transactions

    @property
    def requests(self) -> int:
        return self._executor.requests

    async def run(self, script: Script[T], *, write: bool) -> T:
        if self._closed:
            script.close()
            raise StorageError("storage is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(script, write, loop=loop, future=future))
        return await future

    def post(self, script: Script[Any]) -> None:
        """Queue a write ``script`` and return at once; nobody hears how it ends. The queue
        is run in order by one thread, so any request queued after this one commits in the
        same transaction as it or a later one (:mod:`.inline` relies on that). Posted work
        waits up to :data:`POST_WAIT` for a request to share its commit with. ``script``
        must run exactly one statement (it runs without a savepoint, see :mod:`.executor`)."""
        if self._closed:
            script.close()
            raise StorageError("storage is closed")
        job = _Job(script, True, loop=None, future=None)
        job.single = True
        self._queue.put(job)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)

    # -- the thread -----------------------------------------------------------------------
    def _main(self) -> None:
        stopping = False
        while not stopping:
            job = self._queue.get()
            if job is None:
                break
            batch = [job]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    if not _only_posted(batch):
                        break
                    try:  # no commit for posted work alone: the request using it is coming
                        nxt = self._queue.get(timeout=POST_WAIT)
                    except queue.Empty:
                        break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            for group in _reads_first(batch):
                self._executor.run_batch(group)
                for done in group:
                    if done.loop is not None:
                        with contextlib.suppress(RuntimeError):  # the caller's loop is gone
                            done.loop.call_soon_threadsafe(_resolve, done)
        self._executor.close()


def _reads_first(batch: list[_Job]) -> list[list[_Job]]:
    """Reads queued beside writes go first, as a batch (a read transaction) of their own,
    answered at once: they need not wait for the writes' commit and its fsync (queued
    concurrently, seeing the state before those writes is as right as seeing it after).
    Not when the round holds posted work: a read queued after a posted insertion must see
    it (:mod:`.inline`), so such a round keeps its order."""
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
