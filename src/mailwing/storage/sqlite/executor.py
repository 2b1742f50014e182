"""Executing transaction scripts on one ``sqlite3`` connection, synchronously.

This is the SQLite half of the script protocol (:mod:`mailwing.storage.steps`): it opens the
connection, runs a batch of scripts in one transaction and commits, then removes the content
files dropped by committed scripts and reports the mailboxes whose HIGHESTMODSEQ rose. It
blocks and knows nothing of event loops, on purpose, because it has two callers:

* :class:`~mailwing.storage.sqlite.runner.SqliteRunner`, the database thread of a server, which
  hands it the batches that queued up while it was busy (group commit) and resolves the
  callers' futures afterwards;
* the direct storage of one-shot commands (:mod:`.direct`), which runs each script right away
  in the calling thread, so ``mailwing deliver`` (run once per message by an MTA, issue #9)
  never imports ``asyncio`` nor starts a thread.

Both therefore run exactly the same statements with the same connection settings: WAL journal
(readers do not block the writer), ``synchronous=FULL`` (durable commits), ``foreign_keys=ON``
and a busy timeout so that several processes can share one database file; a lock still held
when it expires, a disk I/O error or a full disk become
:class:`~mailwing.storage.errors.TemporaryStorageError`.

Batches: all scripts of a batch share one ``BEGIN IMMEDIATE`` transaction, each inside its own
``SAVEPOINT`` (nested, never released: see :meth:`SqliteExecutor._run_one`) so that one
failing script (a duplicate name, an unknown mailbox) is rolled back alone, and one
``COMMIT`` (one fsync) makes them all durable. A lone script needs no savepoint, nor does
a script of one statement (:attr:`Work.single`: SQLite undoes a failed statement by
itself), such as the content insertion posted ahead of every delivery (:mod:`.inline`): two
statements fewer while the write lock is held, per message (issue #9).

Relaxed commits (``storage.fsync_flag_changes = false``): a batch whose every write is
:class:`~mailwing.storage.steps.Volatile` (flag changes, expunges, \\Recent claims) commits
with ``synchronous=NORMAL``: the WAL frames are written but not fsynced. Any other write in the
batch (a delivery, a posted content, a new mailbox) makes it ``FULL``, as before. Why this is
safe in WAL mode:

* a crash of the process (even ``kill -9``) loses nothing: the frames are in the OS page cache
  and the next connection reads them; only a power cut or an OS crash can lose them;
* the WAL is written sequentially, so the next ``FULL`` commit's fsync makes every earlier
  relaxed commit durable too. A power cut can only lose the *trailing* relaxed commits, never
  one before a durable commit: no hole, order kept, and an acknowledged message is never lost
  (a lost expunge brings messages back; a lost flag change restores the old flags);
* the bytes of a large content (a file) removed by a relaxed expunge are unlinked only after
  the WAL has been fsynced (:meth:`SqliteExecutor._sync_wal`): unlinking first could leave a
  message whose expunge was lost pointing at a file that is gone.

``PRAGMA synchronous`` cannot change inside a transaction, so the level is chosen before
``BEGIN``: each script is first run up to its first step, and a script is volatile when that
step is ``Volatile``. The pragma is sent only when the level differs from the connection's.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
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
from mailwing.storage.sqlite import inline
from mailwing.storage.sqlite.inline import json_array
from mailwing.storage.sqlite.writelock import WriterQueue
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
    Volatile,
    advance,
)

__all__ = ["SqliteExecutor", "Work", "map_sqlite_error", "split_statements", "to_sqlite_sql"]

T = TypeVar("T")

_TEMPORARY_HINTS = ("locked", "busy", "disk i/o", "full", "unable to open", "readonly")
#: pauses between tries to take the write lock from another process (then 2 ms until
#: ``busy_timeout`` has passed; see :meth:`SqliteExecutor._begin_immediate`)
_LOCK_WAITS = (0.0002, 0.0005, 0.001)
_LOCK_WAIT_MAX = 0.002


class Work:
    """One script to run and, once its batch is done, its outcome.

    A plain class (compared by identity): a dataclass would generate its methods when this
    module is imported, by every ``mailwing deliver`` (issue #9).

    ``volatile``: its first step was ``Volatile``, so its commit need not wait for the disk.
    ``drops_files``: it removed contents whose bytes are files (see
    :meth:`SqliteExecutor._sync_wal`). ``first``: the step to execute first (the script has
    run up to it before the transaction), or ``_FINISHED`` when it ended (result or error)
    without needing the database. ``single``: set by the caller for a script of exactly one
    statement, which then runs without a savepoint of its own."""

    __slots__ = ("changed", "drops", "drops_files", "error", "first", "result", "script",
                 "single", "volatile", "write")

    def __init__(self, script: Script[Any], write: bool) -> None:
        self.script = script
        self.write = write
        self.result: Any = None
        self.error: BaseException | None = None
        self.drops: list[str] = []
        self.changed: set[int] = set()
        self.volatile = False
        self.drops_files = False
        self.first: Any = None
        #: the script runs one statement: no savepoint (a second step fails it)
        self.single = False

    def __repr__(self) -> str:
        return (f"Work(script={self.script!r}, write={self.write!r}, result={self.result!r},"
                f" error={self.error!r})")


_FINISHED = object()
_LEVELS = {"NORMAL": 1, "FULL": 2}


class _BatchFailed(Exception):
    """The whole transaction is lost (lock timeout, I/O error): every request in it fails."""


def _needs_disk(work: Work) -> bool:
    """Whether ``work``'s commit must wait for the disk: a write that is not volatile and
    has not already finished without touching the database."""
    return work.write and not work.volatile and work.first is not _FINISHED


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
        return json_array(value)
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


class SqliteExecutor:
    """Owns one connection (opened on first use); call it from one thread only.

    ``read_only``: the connection refuses to write (``PRAGMA query_only``), for the reader
    thread of :mod:`.runner`: a script that writes although run as a read fails there
    instead of taking the write lock behind the writer's back."""

    def __init__(
        self, path: Path, blobs: BlobStore, *, busy_timeout: float = 5.0,
        on_change: Callable[[set[int]], None] | None = None, read_only: bool = False,
    ) -> None:
        self._path = path
        self._read_only = read_only
        self._blobs = blobs
        self._on_change = on_change
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        #: every write transaction first queues here, behind other processes' (:mod:`.writelock`)
        self.writers = None if read_only else WriterQueue(path)
        #: ``PRAGMA synchronous`` of the connection now: what its next commit uses
        self.synchronous = "FULL"
        #: Transactions run and requests served (their ratio shows group commit at work).
        self.transactions = 0
        self.requests = 0
        #: Of those transactions, the ones committed with synchronous=NORMAL.
        self.relaxed = 0

    def run(self, script: Script[T], *, write: bool) -> T:
        """Run one script in a transaction of its own; its result, or raise its error."""
        work = Work(script, write)
        self.run_batch([work])
        if work.error is not None:
            raise work.error
        return work.result

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.writers is not None:
            self.writers.close()

    def run_batch(self, batch: Sequence[Work]) -> None:
        """Run ``batch`` in one transaction; each item gets its result or its error. The
        change callback has run (for the committed items) when this returns."""
        self.transactions += 1
        self.requests += len(batch)
        for work in batch:
            self._start(work)
        relaxed = queued = False
        try:
            try:
                conn = self._connect()
                if any(w.write for w in batch):
                    relaxed = not any(_needs_disk(w) for w in batch)
                    self._set_synchronous(conn, "NORMAL" if relaxed else "FULL")
                    self.relaxed += relaxed
                    queued = self.writers is not None and self.writers.acquire()
                self._transaction(conn, batch, queued=queued)
            except _BatchFailed as failed:
                for work in batch:
                    work.error = failed.__cause__
            except Exception as exc:
                for work in batch:
                    work.error = map_sqlite_error(exc)
            finally:
                for work in batch:
                    work.script.close()  # no-op when it ran to its end
            # Files go before callers hear back (unlinking is cheap), so that a content is
            # unreadable once the expunge that removed its last entry has returned.
            done = [work for work in batch if work.error is None]
            if not (relaxed and any(w.drops_files for w in done)) or self._sync_wal():
                self._remove_files([sha for work in done for sha in work.drops])
        finally:
            if queued and self.writers is not None:
                self.writers.release()
        changed = {i for work in batch if work.error is None for i in work.changed}
        if changed and self._on_change is not None:
            with contextlib.suppress(Exception):  # a lost wake-up only delays: waiters re-check
                self._on_change(changed)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None
            )
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
                if self._read_only:
                    conn.execute("PRAGMA query_only = ON")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self.synchronous = "FULL"
        return self._conn

    def _start(self, work: Work) -> None:
        """Run ``work``'s script up to its first step, before the transaction: a first step
        ``Volatile`` marks it volatile (see the module docstring). No statement runs here;
        a script that ends or fails before asking for one is finished."""
        try:
            done, item = advance(work.script, None)
            while not done and isinstance(item, Volatile):
                work.volatile = True
                done, item = advance(work.script, None)
        except Exception as exc:
            work.error = map_sqlite_error(exc)
            work.first = _FINISHED
            return
        if done:
            work.result = item
            work.first = _FINISHED
        else:
            work.first = item

    def _set_synchronous(self, conn: sqlite3.Connection, level: str) -> None:
        """Outside a transaction only (SQLite refuses it inside one); a statement only when
        the level changes."""
        if level != self.synchronous:
            conn.execute(f"PRAGMA synchronous = {_LEVELS[level]}")
            self.synchronous = level

    def _sync_wal(self) -> bool:
        """fsync the WAL file: after a relaxed commit, exactly what a ``FULL`` commit would
        have done (WAL mode syncs nothing else at commit), so the commit is durable before
        the content files it dropped are unlinked. False if that failed: the files then stay
        (orphans the garbage collection removes), a safe outcome."""
        try:
            fd = os.open(f"{self._path}-wal", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            return False
        return True

    def _transaction(self, conn: sqlite3.Connection, batch: Sequence[Work], *,
                     queued: bool = False) -> None:
        """One transaction for the batch. A lone request (the common case when the server
        is not busy) needs no savepoint: if it fails, the whole transaction is rolled back.

        ``queued``: this thread holds the writers' file lock (:mod:`.writelock`), so every
        writer that queues there is out of the way and ``BEGIN IMMEDIATE`` goes ahead at
        once; only a writer that does not queue (the ``sqlite3`` shell) can still hold
        SQLite's lock, and SQLite's own busy handler waits for that one. The short-step
        retries of :meth:`_begin_immediate` would only add two statements to every write
        batch, each a GIL hand-over for the writer thread: under the mixed IMAP load at 50
        clients (issue #9) the three statements took 0.40 ms of the 6.3 ms a batch held the
        lock, ``BEGIN IMMEDIATE`` alone 0.23 ms."""
        if queued:
            conn.execute("BEGIN IMMEDIATE")
        elif any(w.write for w in batch):
            self._begin_immediate(conn)
        else:
            conn.execute("BEGIN")
        try:
            alone = len(batch) == 1
            for work in batch:
                if work.first is not _FINISHED:
                    self._run_one(conn, work, savepoint=not (alone or work.single))
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

    def _run_one(self, conn: sqlite3.Connection, work: Work, *, savepoint: bool) -> None:
        """Run ``work``; with ``savepoint``, inside a ``SAVEPOINT job`` that a failure rolls
        back to. The savepoint is never released: the next request's ``SAVEPOINT job``
        nests inside it, ``ROLLBACK TO job`` goes back to the innermost one (the failing
        request's own), and ``COMMIT`` ends them all. A ``RELEASE`` would be one more
        statement per request while the write lock is held, each a GIL hand-over for the
        writer thread (README, "Performance")."""
        if savepoint:
            conn.execute("SAVEPOINT job")
        try:
            work.result = self._drive(conn, work)
        except (sqlite3.OperationalError, OSError):
            raise  # the transaction itself is in trouble: fail the whole batch
        except Exception as exc:
            work.error = map_sqlite_error(exc)
            work.drops.clear()
            work.changed.clear()
            if savepoint:
                conn.execute("ROLLBACK TO job")

    def _drive(self, conn: sqlite3.Connection, work: Work) -> Any:
        """Run the rest of ``work``'s script, from the step :meth:`_start` stopped at."""
        done, item = False, work.first
        while not done:
            done, item = advance(work.script, self._step(conn, work, item))
            if work.single and not done:
                raise TypeError(f"a single-statement script asked for more: {item!r}")
        return item

    def _step(self, conn: sqlite3.Connection, work: Work, step: Any) -> Any:
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
            return inline.has_content(conn, self._blobs, step.sha256)
        if isinstance(step, DropBlobs):
            if inline.drop_inline(conn, step.sha256s) < len(step.sha256s):
                work.drops_files = True  # not all were kept in the database: files
            work.drops.extend(step.sha256s)  # files, if any, once committed
            return None
        if isinstance(step, Changed):
            work.changed.update(step.mailbox_ids)
            return None
        if isinstance(step, Serialize):
            return None  # BEGIN IMMEDIATE already excludes every other writer
        if isinstance(step, Volatile):
            return None  # not the first step: too late to relax this commit (module doc)
        raise TypeError(f"unknown step {step!r}")

    def _remove_files(self, sha256s: Sequence[str]) -> None:
        """Delete blob files of contents removed by committed requests.

        This runs under the write lock, and appends check the file inside their own write
        transaction, so no process can link a content whose file is about to go; a content
        stored again meanwhile (a later request of the same batch) keeps its file."""
        # Only contents that have a file: an inline content's bytes went with its row, and
        # checking it again would be a second transaction under the lock after every
        # expunge of a small message (issue #9, the mixed IMAP load). A small content can
        # have both (a file written before schema 9, then an inline row when delivered
        # again), so the file itself is looked for, not the inline row.
        files = {sha for sha in sha256s if self._blobs.exists(sha)}
        if not files or self._conn is None:
            return
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                still = conn.execute(
                    "SELECT sha256 FROM contents"
                    " WHERE sha256 IN (SELECT value FROM json_each(?))",
                    (json_array(sorted(files)),),
                ).fetchall()
                self._blobs.remove(files - {r[0] for r in still})
            finally:
                conn.execute("COMMIT")
        except (sqlite3.Error, OSError):
            pass  # an orphan file is harmless; a later garbage collection may remove it
