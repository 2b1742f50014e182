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
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mailwing.storage.blobs import BlobStore, to_thread
from mailwing.storage.interface import ContentWriter
from mailwing.storage.notify import ChangeWaiters
from mailwing.storage.sqlite import inline
from mailwing.storage.sqlite.common import SqliteBase, prepare_folder
from mailwing.storage.sqlite.notify import LocalNotifier, notify_dir
from mailwing.storage.sqlite.runner import SqliteRunner
from mailwing.storage.steps import Script

__all__ = ["SqliteStorage"]

T = TypeVar("T")


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

    def write_lock_stats(self) -> tuple[int, int, float, float]:
        """This process's writer in the writers' queue, so far: (transactions, of those the
        ones that waited for another writer, seconds it held the lock, its CPU seconds
        meanwhile). Exported as metrics (:func:`mailwing.services.metrics.watch_write_lock`)."""
        queue = self._runner.write_lock
        if queue is None:
            return 0, 0, 0.0, 0.0
        return queue.taken, queue.waited, queue.held_seconds, queue.held_cpu_seconds

    async def _run(self, script: Script[T], *, write: bool = True) -> T:
        return await self._runner.run(script, write=write)

    async def _read_content(self, sha256s: Sequence[str],
                            script: Callable[..., Script[T]], *args: Any) -> T:
        return await self._runner.run(script(*args), write=False, after=sha256s)

    async def close(self) -> None:
        self._notifier.close()
        await self._runner.close()
        self._notifier.close_sender()

    async def _start_listening(self) -> None:
        # Without the socket, no wake-ups from other processes: the periodic re-check remains.
        with contextlib.suppress(OSError):
            self._notifier.listen()

    def new_content(self) -> ContentWriter:
        return inline.InlineContentWriter(self.blobs, self._runner.post)
