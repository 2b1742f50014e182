"""The single-node backend: metadata in one SQLite file, contents as files beside it.

Everything specific to SQLite lives in :mod:`.runner` (the database thread with group
commit); the operations themselves are the shared scripts, driven through
:class:`~mailwing.storage.base.ScriptedStorage`. Contents are files under ``data_dir/blobs``
(:mod:`mailwing.storage.blobs`), fsynced before any row pointing at them is committed.
Change wake-ups between processes sharing the file go through :mod:`.notify`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TypeVar

from mailwing.storage.base import ScriptedStorage
from mailwing.storage.blobs import BlobStore, FileContentWriter
from mailwing.storage.errors import NotFound, TemporaryStorageError
from mailwing.storage.interface import ContentWriter
from mailwing.storage.migrate import load_migrations
from mailwing.storage.notify import ChangeWaiters
from mailwing.storage.sqlite.notify import LocalNotifier, notify_dir
from mailwing.storage.sqlite.runner import SqliteRunner
from mailwing.storage.steps import Script, q

__all__ = ["SqliteStorage"]

T = TypeVar("T")

_MIGRATIONS = load_migrations("mailwing.storage.sqlite")


def _collect_garbage(blobs: BlobStore, min_age: float) -> Script[int]:
    """Runs in the database thread inside a write transaction, so no append can link a
    content between the listing and the unlinking."""
    rows = yield q("SELECT sha256 FROM contents")
    return blobs.remove_orphans({r[0] for r in rows}, min_age)


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
        """Remove content files that no row points at and that are older than ``min_age``
        seconds (left by a crash or by a delivery that never appended); return how many."""
        return await self._run(_collect_garbage(self.blobs, min_age))

    def new_content(self) -> ContentWriter:
        return FileContentWriter(self.blobs)

    def open_content(self, sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        return self.blobs.read(sha256, chunk_size)

    async def read_contents(self, sha256s: Sequence[str]) -> dict[str, bytes]:
        """All the files in one thread hop; a content with no file (gone, or kept somewhere
        else by a later storage version) goes through :meth:`read_content` alone."""
        wanted = list(dict.fromkeys(sha256s))
        try:
            found = await asyncio.to_thread(self.blobs.read_many, wanted)
        except OSError as exc:
            raise TemporaryStorageError(f"cannot read contents: {exc}") from exc
        for sha256 in wanted:
            if sha256 not in found:
                with contextlib.suppress(NotFound):
                    found[sha256] = await self.read_content(sha256)
        return found
