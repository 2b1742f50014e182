"""The single-node backend: metadata and small contents in one SQLite file, large contents
as files beside it.

Everything specific to SQLite lives in :mod:`.runner` (the database thread with group
commit); the operations themselves are the shared scripts, driven through
:class:`~mailwing.storage.base.ScriptedStorage`. Contents of at most
:data:`~.inline.INLINE_LIMIT` octets are rows of the database, committed with the message
that links them (:mod:`.inline`); larger ones are files under ``data_dir/blobs``
(:mod:`mailwing.storage.blobs`), fsynced before any row pointing at them is committed.
Change wake-ups between processes sharing the file go through :mod:`.notify`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

from mailwing.storage.base import ScriptedStorage
from mailwing.storage.blobs import BlobStore
from mailwing.storage.errors import TemporaryStorageError
from mailwing.storage.interface import ContentWriter
from mailwing.storage.migrate import load_migrations
from mailwing.storage.notify import ChangeWaiters
from mailwing.storage.sqlite import inline
from mailwing.storage.sqlite.notify import LocalNotifier, notify_dir
from mailwing.storage.sqlite.runner import SqliteRunner
from mailwing.storage.steps import Script, q

__all__ = ["SqliteStorage"]

T = TypeVar("T")

_MIGRATIONS = load_migrations("mailwing.storage.sqlite")


def _collect_garbage(blobs: BlobStore, min_age: float) -> Script[int]:
    """Runs in the database thread inside a write transaction, so no append can link a
    content between the listing and the unlinking."""
    removed = yield from inline.collect_inline(min_age)
    rows = yield q("SELECT sha256 FROM contents")
    return removed + blobs.remove_orphans({r[0] for r in rows}, min_age)


class SqliteStorage(ScriptedStorage):
    MIGRATIONS = _MIGRATIONS
    LATEST_SCHEMA = _MIGRATIONS[-1].version
    BACKEND = "sqlite"
    SIZE_SQL = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"

    def __init__(self, path: Path, data_dir: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.blobs = BlobStore(data_dir / "blobs")
        self._waiters = ChangeWaiters()
        self._notifier = LocalNotifier(notify_dir(path), self._waiters)
        self._runner = SqliteRunner(
            path, self.blobs, busy_timeout=busy_timeout, on_change=self._notifier.broadcast
        )

    @classmethod
    async def open(
        cls, path: Path, data_dir: Path, *, busy_timeout: float = 5.0
    ) -> SqliteStorage:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TemporaryStorageError(f"cannot create {path.parent}: {exc}") from exc
        return cls(path, data_dir, busy_timeout=busy_timeout)

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(transactions, requests) so far: fewer transactions means requests shared commits."""
        return self._runner.transactions, self._runner.requests

    async def _run(self, script: Script[T], *, write: bool = True) -> T:
        return await self._runner.run(script, write=write)

    async def close(self) -> None:
        self._notifier.close()
        await self._runner.close()
        self._notifier.close_sender()

    async def _start_listening(self) -> None:
        # Without the socket, no wake-ups from other processes: the periodic re-check remains.
        with contextlib.suppress(OSError):
            self._notifier.listen()

    async def collect_garbage(self, min_age: float = 3600.0) -> int:
        """Remove stored bytes (inline rows and files) that no ``contents`` row points at
        and that are older than ``min_age`` seconds (left by a crash or by a delivery that
        never appended); return how many."""
        return await self._run(_collect_garbage(self.blobs, min_age))

    def new_content(self) -> ContentWriter:
        return inline.InlineContentWriter(self.blobs, self._runner.post)

    async def open_content(
        self, sha256: str, *, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[bytes]:
        """The database first (where small contents are, and where a content just finished
        is queued to go), then the file."""
        data = await self._read(inline.read_inline(sha256))
        if data is None:
            async for chunk in self.blobs.read(sha256, chunk_size):
                yield chunk
            return
        if len(data) <= chunk_size:
            if data:
                yield data
            return
        view = memoryview(data)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])

    async def content_stored(self, sha256: str) -> bool:
        """Whether the bytes of ``sha256`` are stored, in the database or as a file."""
        return await self._read(inline.stored(self.blobs, sha256))
