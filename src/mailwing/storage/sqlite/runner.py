"""The SQLite database thread: runs transaction scripts off the event loop, with group commit.

One thread owns one ``sqlite3`` connection (the module's objects are bound to their thread);
coroutines hand it scripts through a queue and await a future. SQLite admits one writer at a
time anyway, so a single thread costs no concurrency, and it makes *group commit* natural:
while the thread is busy (an fsync takes a while), new requests queue up; the next round takes
all of them and runs them in one ``BEGIN IMMEDIATE`` transaction, each inside its own
``SAVEPOINT`` so that one failing request (a duplicate name, an unknown mailbox) is rolled
back alone, and one ``COMMIT`` (one fsync with ``synchronous=FULL``) makes them all durable.
Futures are resolved only after that commit: an SMTP ``250`` is never sent for a message
that a crash could still lose. Read-only requests taken in the same round run first, in a
read transaction of their own, and are answered before the writes start: a read never waits
for someone else's fsync.

After each commit, the mailbox ids whose HIGHESTMODSEQ the committed requests raised (their
:class:`~mailwing.storage.steps.Changed` steps) go to the ``on_change`` callback, still in the
database thread and before any caller hears back; it wakes ``wait_for_change`` callers here
and in other processes (:mod:`.notify`).

Connection settings: WAL journal (readers do not block the writer), ``synchronous=FULL``
(durable commits), ``foreign_keys=ON``, and a busy timeout so that several worker processes
can share one database file; a lock still held when it expires, a disk I/O error or a full
disk become :class:`~mailwing.storage.errors.TemporaryStorageError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from mailwing.storage.blobs import BlobStore
from mailwing.storage.common import encode_flags, iso_utc
from mailwing.storage.errors import (
    AlreadyExists,
    NotFound,
    StorageError,
    TemporaryStorageError,
)
from mailwing.storage.steps import (
    HAS_FLAG,
    IN_LIST,
    Batch,
    Changed,
    DropBlobs,
    HasBlob,
    Query,
    Script,
    Serialize,
    TableExists,
    drive,
)

__all__ = ["SqliteRunner", "map_sqlite_error"]

T = TypeVar("T")

MAX_BATCH = 128  # requests that may share one transaction
#: pauses between tries to take the write lock from another process (then 2 ms until
#: ``busy_timeout`` has passed; see :meth:`SqliteRunner._begin_immediate`)
_LOCK_WAITS = (0.0002, 0.0005, 0.001)
_LOCK_WAIT_MAX = 0.002
_TEMPORARY_HINTS = ("locked", "busy", "disk i/o", "full", "unable to open", "readonly")


@dataclass(eq=False)
class _Job:
    script: Script[Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    drops: list[str] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)


class _BatchFailed(Exception):
    """The whole transaction is lost (lock timeout, I/O error): every request in it fails."""


def map_sqlite_error(exc: BaseException) -> BaseException:
    """The storage exception for a driver or file error; others are returned unchanged."""
    if isinstance(exc, sqlite3.IntegrityError):
        text = str(exc)
        if "UNIQUE" in text or "PRIMARY KEY" in text:
            return AlreadyExists(text)
        if "FOREIGN KEY" in text:
            return NotFound(f"a referenced row does not exist ({text})")
        return StorageError(text)
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if any(hint in text.lower() for hint in _TEMPORARY_HINTS):
            return TemporaryStorageError(f"SQLite: {text}")
        return StorageError(f"SQLite: {text}")
    if isinstance(exc, OSError):
        return TemporaryStorageError(f"file error: {exc}")
    return exc


@functools.lru_cache(maxsize=256)
def to_sqlite_sql(sql: str) -> str:
    """``$n`` placeholders become ``?n``; ``@IN($n)`` reads a JSON array parameter;
    ``@HASFLAG(col, $n)`` looks for `` flag `` in the space-separated ``col``."""
    sql = IN_LIST.sub(r"IN (SELECT value FROM json_each(?\1))", sql)
    sql = HAS_FLAG.sub(r"(instr(' ' || \1 || ' ', ' ' || ?\2 || ' ') > 0)", sql)
    return sql.replace("$", "?")


_PLAIN_TYPES = frozenset({int, str, bytes, float, bool, type(None)})


def _adapt(value: Any) -> Any:
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, frozenset):
        return encode_flags(value)
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return value


def split_statements(sql: str) -> list[str]:
    """A migration file as single statements (``executescript`` would commit first)."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
    ):
        raise ValueError("migration ends with an incomplete statement")
    return statements


class SqliteRunner:
    """Owns the database thread. ``await run(script)``; ``await close()`` at the end."""

    def __init__(
        self, path: Path, blobs: BlobStore, *, busy_timeout: float = 5.0,
        on_change: Callable[[set[int]], None] | None = None,
    ) -> None:
        self._path = path
        self._blobs = blobs
        self._on_change = on_change
        self._busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        #: Transactions run and requests served (their ratio shows group commit at work).
        self.transactions = 0
        self.requests = 0
        self._thread = threading.Thread(target=self._main, name="mailwing-sqlite", daemon=True)
        self._thread.start()

    async def run(self, script: Script[T], *, write: bool) -> T:
        if self._closed:
            script.close()
            raise StorageError("storage is closed")
        loop = asyncio.get_running_loop()
        job = _Job(script, write, loop, loop.create_future())
        self._queue.put(job)
        return await job.future

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
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._run_batch(batch)
        if self._conn is not None:
            self._conn.close()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None
            )
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _run_batch(self, batch: list[_Job]) -> None:
        """Reads queued beside writes run first, in their own read transaction, and are
        answered at once: they need not wait for the writes' commit and its fsync (they
        were queued concurrently, so seeing the state before those writes is as right as
        seeing it after). Writes then share one transaction as before."""
        reads = [job for job in batch if not job.write]
        if reads and len(reads) < len(batch):
            self._run_group(reads)
            batch = [job for job in batch if job.write]
        self._run_group(batch)

    def _run_group(self, batch: list[_Job]) -> None:
        self.transactions += 1
        self.requests += len(batch)
        try:
            conn = self._connect()
            self._transaction(conn, batch)
        except _BatchFailed as failed:
            for job in batch:
                job.error = failed.__cause__
        except Exception as exc:
            for job in batch:
                job.error = map_sqlite_error(exc)
        # Files go before callers hear back (unlinking is cheap), so that a content is
        # unreadable once the expunge that removed its last entry has returned.
        self._remove_files([sha for job in batch if job.error is None for sha in job.drops])
        changed = {i for job in batch if job.error is None for i in job.changed}
        if changed and self._on_change is not None:
            with contextlib.suppress(Exception):  # a lost wake-up only delays: waiters re-check
                self._on_change(changed)
        for job in batch:
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone
                job.loop.call_soon_threadsafe(_resolve, job)

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """One transaction for the batch. A lone request (the common case when the server
        is not busy) needs no savepoint: if it fails, the whole transaction is rolled back."""
        if any(j.write for j in batch):
            self._begin_immediate(conn)
        else:
            conn.execute("BEGIN")
        try:
            alone = len(batch) == 1
            for job in batch:
                self._run_job(conn, job, savepoint=not alone)
            conn.execute("ROLLBACK" if alone and batch[0].error is not None else "COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _BatchFailed from map_sqlite_error(exc)

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's write lock in short steps.

        Why not SQLite's own busy timeout: it sleeps 1, 2, 5, 10, 15, 20, 25... ms between
        tries, while the other worker process holds the lock for about one commit (one fsync,
        ~1 ms), so under load every write waited 3 to 8 ms for nothing. Here the steps are
        0.2 ms growing to 2 ms, up to the same ``busy_timeout`` in total."""
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + self._busy_timeout
            for wait in itertools.chain(_LOCK_WAITS, itertools.repeat(_LOCK_WAIT_MAX)):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() + wait > deadline:
                        raise
                time.sleep(wait)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")

    def _run_job(self, conn: sqlite3.Connection, job: _Job, *, savepoint: bool) -> None:
        if savepoint:
            conn.execute("SAVEPOINT job")
        try:
            job.result = drive(job.script, functools.partial(self._step, conn, job))
        except (sqlite3.OperationalError, OSError):
            raise  # the transaction itself is in trouble: fail the whole batch
        except Exception as exc:
            job.error = map_sqlite_error(exc)
            job.drops.clear()
            job.changed.clear()
            if savepoint:
                conn.execute("ROLLBACK TO job")
        if savepoint:
            conn.execute("RELEASE job")

    def _step(self, conn: sqlite3.Connection, job: _Job, step: Any) -> Any:
        if isinstance(step, Query):
            return conn.execute(to_sqlite_sql(step.sql), [_adapt(a) for a in step.args]).fetchall()
        if isinstance(step, Batch):
            for statement in split_statements(step.sql):
                conn.execute(statement)
            return None
        if isinstance(step, TableExists):
            rows = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (step.name,)
            ).fetchall()
            return bool(rows)
        if isinstance(step, HasBlob):
            return self._blobs.exists(step.sha256)
        if isinstance(step, DropBlobs):
            job.drops.extend(step.sha256s)
            return None
        if isinstance(step, Changed):
            job.changed.update(step.mailbox_ids)
            return None
        if isinstance(step, Serialize):
            return None  # BEGIN IMMEDIATE already excludes every other writer
        raise TypeError(f"unknown step {step!r}")

    def _remove_files(self, sha256s: Sequence[str]) -> None:
        """Delete blob files of contents removed by committed requests.

        This runs under the write lock, and appends check the file inside their own write
        transaction, so no process can link a content whose file is about to go; a content
        stored again meanwhile (a later request of the same batch) keeps its file."""
        if not sha256s or self._conn is None:
            return
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                still = conn.execute(
                    "SELECT sha256 FROM contents"
                    " WHERE sha256 IN (SELECT value FROM json_each(?))",
                    (json.dumps(sorted(set(sha256s))),),
                ).fetchall()
                self._blobs.remove(set(sha256s) - {r[0] for r in still})
            finally:
                conn.execute("COMMIT")
        except (sqlite3.Error, OSError):
            pass  # an orphan file is harmless; a later garbage collection may remove it


def _resolve(job: _Job) -> None:
    if job.future.done():  # the caller was cancelled
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)
