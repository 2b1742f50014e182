"""SQLite storage in the calling thread, without an event loop: for ``mailwing deliver``.

An MTA runs ``mailwing deliver`` once per message (Postfix ``mailbox_command``, fetchmail's
MDA), so its start-up is most of its cost (issue #9: <= 60 ms per message). The regular
:class:`~.backend.SqliteStorage` needs ``asyncio`` (tens of milliseconds of imports: ssl,
logging, concurrent.futures, subprocess) and starts a database thread, all to run a handful of
scripts once. This storage runs the *same* transaction scripts through the *same*
:class:`~.executor.SqliteExecutor` right away in the calling thread, writes content files with
the same :class:`~mailwing.storage.blobs.FileContentWriter` (fsynced before the commit that
points at them), and sends the same change wake-ups to other processes
(:class:`~.broadcast.Broadcaster`, so IMAP IDLE sessions see the delivery).

Its methods are still coroutines, so the services above (``deliver_local``) are shared
unchanged; none of them ever suspends, and :func:`run_direct` runs one to its end by a single
``send(None)``. Waiting for changes needs a loop and is not offered. PostgreSQL has no direct
storage: its driver is asyncio-only.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from mailwing.storage.blobs import BlobStore, FileContentWriter, run_here
from mailwing.storage.errors import StorageError
from mailwing.storage.interface import ContentWriter
from mailwing.storage.sqlite.broadcast import Broadcaster, notify_dir
from mailwing.storage.sqlite.common import SqliteBase, prepare_folder
from mailwing.storage.sqlite.executor import SqliteExecutor
from mailwing.storage.steps import Script

__all__ = ["DirectSqliteStorage", "run_direct"]

T = TypeVar("T")


def run_direct(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end without an event loop; it must never suspend (everything it
    awaits is direct storage work). Raises RuntimeError, after closing it, if it does."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a direct storage operation waited for an event loop")


class DirectSqliteStorage(SqliteBase):
    """A SQLite storage whose coroutines complete without suspending (drive them with
    :func:`run_direct`). One thread only; no group commit (one script, one transaction)."""

    def __init__(self, path: Path, data_dir: Path, *, busy_timeout: float = 5.0,
                 fsync_flag_changes: bool = False) -> None:
        self.path = path
        self.fsync_flag_changes = fsync_flag_changes
        self.blobs = BlobStore(data_dir / "blobs")
        self._offload = run_here
        self._broadcaster = Broadcaster(notify_dir(path))
        self._executor = SqliteExecutor(path, self.blobs, busy_timeout=busy_timeout,
                                        on_change=self._broadcaster.send)
        self._closed = False

    @classmethod
    def open(cls, path: Path, data_dir: Path, *, busy_timeout: float = 5.0,
             fsync_flag_changes: bool = False) -> DirectSqliteStorage:
        prepare_folder(path)
        return cls(path, data_dir, busy_timeout=busy_timeout,
                   fsync_flag_changes=fsync_flag_changes)

    async def _run(self, script: Script[T], *, write: bool = True) -> T:
        if self._closed:
            script.close()
            raise StorageError("storage is closed")
        return self._executor.run(script, write=write)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._executor.close()
            self._broadcaster.close()

    def new_content(self) -> ContentWriter:
        return FileContentWriter(self.blobs, offload=run_here)

    async def wait_for_change(self, mailbox_id: int, since_modseq: int, timeout: float) -> bool:
        raise NotImplementedError("waiting for changes needs an event loop: use SqliteStorage")
