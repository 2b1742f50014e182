"""The single-node backend: metadata and small contents in one SQLite file, large contents
as files beside it.

Everything specific to SQLite lives in :mod:`.executor` (statements, savepoints, errors),
driven here by :mod:`.runner` (the database thread with group commit); the operations
themselves are the shared scripts, driven through
:class:`~mailwing.storage.base.ScriptedStorage`. Contents of at most
:data:`~.inline.INLINE_LIMIT` octets are rows of the database, committed with the message
that links them (:mod:`.inline`); larger ones are files under ``data_dir/blobs``
(:mod:`mailwing.storage.blobs`), fsynced before any row pointing at them is committed.
Change wake-ups between processes sharing the file go through :mod:`.notify`. What this
shares with the direct storage of ``mailwing deliver`` is in :mod:`.common`.

Point reads on every message's path (RCPT's :meth:`SqliteStorage.lookup_recipient`, the
quota check's :meth:`SqliteStorage.usage`) run right here, on the event loop, on a read
connection of their own (:class:`_HereReads`), instead of hopping to the database thread
(issue #9, latency per message). Why that is better for them: the statement takes tens of
microseconds on pages every message touches, while the hop costs more than that in queue
hand-over, GIL switches and the loop's wake-up, and waits behind whatever the database thread
is doing (a group commit and its fsync). WAL readers never wait for the writer, and that
connection has no busy timeout: a read that would have to wait (another process recovering
the WAL) fails at once and goes to the database thread, which may wait. Reads of large
results and everything else stay on the thread, so the loop never blocks on real work.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mailwing.storage import scripts
from mailwing.storage.blobs import BlobStore, to_thread
from mailwing.storage.errors import TemporaryStorageError
from mailwing.storage.interface import ContentWriter, RecipientLookup
from mailwing.storage.notify import ChangeWaiters
from mailwing.storage.sqlite import inline
from mailwing.storage.sqlite.common import SqliteBase, prepare_folder
from mailwing.storage.sqlite.executor import adapt, map_sqlite_error, to_sqlite_sql
from mailwing.storage.sqlite.notify import LocalNotifier, notify_dir
from mailwing.storage.sqlite.runner import SqliteRunner
from mailwing.storage.steps import Query, Script, advance

__all__ = ["SqliteStorage"]

T = TypeVar("T")


class _HereReads:
    """One-statement read scripts run in the calling thread on a connection of their own
    (module docstring): the statement alone, in autocommit mode (its own read transaction),
    without the batch machinery of the database thread. Bound to the first thread that uses
    it (the event loop's); from any other thread, or when the read cannot start at once
    (busy, locked, any temporary error), :meth:`read` answers (False, None) and the caller
    goes to the database thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._thread: int | None = None
        #: reads answered here (for tests: no thread hop was made)
        self.served = 0

    def read(self, script: Script[Any]) -> tuple[bool, Any]:
        """(True, result) or (False, None) when the database thread must do it."""
        me = threading.get_ident()
        if self._thread is None:
            self._thread = me
        try:
            if me != self._thread:
                return False, None
            done, step = advance(script, None)
            if not done:
                if not isinstance(step, Query):
                    raise TypeError(f"a point read runs one statement, not {step!r}")
                conn = self._conn or self._connect()
                rows = conn.execute(to_sqlite_sql(step.sql),
                                    [adapt(a) for a in step.args]).fetchall()
                done, step = advance(script, rows)
                if not done:
                    raise TypeError("a point read runs one statement")
        except sqlite3.Error as exc:
            mapped = map_sqlite_error(exc)
            if isinstance(mapped, TemporaryStorageError):
                return False, None
            raise mapped from exc
        finally:
            script.close()
        self.served += 1
        return True, step

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=0.0, isolation_level=None)
        conn.execute("PRAGMA query_only = ON")
        self._conn = conn
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


class SqliteStorage(SqliteBase):
    def __init__(self, path: Path, data_dir: Path, *, busy_timeout: float = 5.0,
                 fsync_flag_changes: bool = False) -> None:
        self.path = path
        self.fsync_flag_changes = fsync_flag_changes
        self.blobs = BlobStore(data_dir / "blobs")
        self._offload = to_thread
        self._waiters = ChangeWaiters()
        self._notifier = LocalNotifier(notify_dir(path), self._waiters)
        self._runner = SqliteRunner(
            path, self.blobs, busy_timeout=busy_timeout, on_change=self._notifier.broadcast
        )
        self._here = _HereReads(path)
        self._closed = False

    @classmethod
    async def open(
        cls, path: Path, data_dir: Path, *, busy_timeout: float = 5.0,
        fsync_flag_changes: bool = False,
    ) -> SqliteStorage:
        prepare_folder(path)
        return cls(path, data_dir, busy_timeout=busy_timeout,
                   fsync_flag_changes=fsync_flag_changes)

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(transactions, requests) so far: fewer transactions means requests shared commits."""
        return self._runner.transactions, self._runner.requests

    async def _run(self, script: Script[T], *, write: bool = True) -> T:
        return await self._runner.run(script, write=write)

    async def lookup_recipient(self, address: str) -> RecipientLookup | None:
        return await self._point_read(scripts.lookup_recipient, address)

    async def usage(self, user_id: int) -> tuple[int, int]:
        return await self._point_read(scripts.usage, user_id)

    async def _point_read(self, script: Callable[..., Script[T]], *args: Any) -> T:
        """A one-row read on the event loop, or on the database thread when it cannot be
        answered here at once (module docstring)."""
        if not self._closed:
            done, result = self._here.read(script(*args))
            if done:
                return result
        return await self._read(script, *args)

    async def close(self) -> None:
        self._closed = True
        self._here.close()
        self._notifier.close()
        await self._runner.close()
        self._notifier.close_sender()

    async def _start_listening(self) -> None:
        # Without the socket, no wake-ups from other processes: the periodic re-check remains.
        with contextlib.suppress(OSError):
            self._notifier.listen()

    def new_content(self) -> ContentWriter:
        return inline.InlineContentWriter(self.blobs, self._runner.post)
