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
``SAVEPOINT`` so that one failing script (a duplicate name, an unknown mailbox) is rolled back
alone, and one ``COMMIT`` (one fsync) makes them all durable. A lone script needs no savepoint.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import sqlite3
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
from mailwing.storage.sqlite import inline
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
    drive,
)

__all__ = ["SqliteExecutor", "Work", "map_sqlite_error", "split_statements", "to_sqlite_sql"]

T = TypeVar("T")

_TEMPORARY_HINTS = ("locked", "busy", "disk i/o", "full", "unable to open", "readonly")
#: pauses between tries to take the write lock from another process (then 2 ms until
#: ``busy_timeout`` has passed; see :meth:`SqliteExecutor._begin_immediate`)
_LOCK_WAITS = (0.0002, 0.0005, 0.001)
_LOCK_WAIT_MAX = 0.002


@dataclass(eq=False)
class Work:
    """One script to run and, once its batch is done, its outcome."""

    script: Script[Any]
    write: bool
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


class SqliteExecutor:
    """Owns one connection (opened on first use); call it from one thread only."""

    def __init__(
        self, path: Path, blobs: BlobStore, *, busy_timeout: float = 5.0,
        on_change: Callable[[set[int]], None] | None = None,
    ) -> None:
        self._path = path
        self._blobs = blobs
        self._on_change = on_change
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        #: Transactions run and requests served (their ratio shows group commit at work).
        self.transactions = 0
        self.requests = 0

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

    def run_batch(self, batch: Sequence[Work]) -> None:
        """Run ``batch`` in one transaction; each item gets its result or its error. The
        change callback has run (for the committed items) when this returns."""
        self.transactions += 1
        self.requests += len(batch)
        try:
            conn = self._connect()
            self._transaction(conn, batch)
        except _BatchFailed as failed:
            for work in batch:
                work.error = failed.__cause__
        except Exception as exc:
            for work in batch:
                work.error = map_sqlite_error(exc)
        # Files go before callers hear back (unlinking is cheap), so that a content is
        # unreadable once the expunge that removed its last entry has returned.
        self._remove_files([sha for work in batch if work.error is None for sha in work.drops])
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
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _transaction(self, conn: sqlite3.Connection, batch: Sequence[Work]) -> None:
        """One transaction for the batch. A lone request (the common case when the server
        is not busy) needs no savepoint: if it fails, the whole transaction is rolled back."""
        if any(w.write for w in batch):
            self._begin_immediate(conn)
        else:
            conn.execute("BEGIN")
        try:
            alone = len(batch) == 1
            for work in batch:
                self._run_one(conn, work, savepoint=not alone)
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
        if savepoint:
            conn.execute("SAVEPOINT job")
        try:
            work.result = drive(work.script, functools.partial(self._step, conn, work))
        except (sqlite3.OperationalError, OSError):
            raise  # the transaction itself is in trouble: fail the whole batch
        except Exception as exc:
            work.error = map_sqlite_error(exc)
            work.drops.clear()
            work.changed.clear()
            if savepoint:
                conn.execute("ROLLBACK TO job")
        if savepoint:
            conn.execute("RELEASE job")

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
            inline.drop_inline(conn, step.sha256s)
            work.drops.extend(step.sha256s)  # files, if any, once committed
            return None
        if isinstance(step, Changed):
            work.changed.update(step.mailbox_ids)
            return None
        if isinstance(step, Serialize):
            return None  # BEGIN IMMEDIATE already excludes every other writer
        if isinstance(step, Volatile):
            return None  # batched with durable ones under the same group commit
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
