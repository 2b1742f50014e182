"""What both SQLite storages share: schema, reading contents, garbage collection, opening.

:class:`~.backend.SqliteStorage` (servers and most commands: a database thread with group
commit, change wake-ups in both directions) and :class:`~.direct.DirectSqliteStorage`
(``mailwing deliver``: everything in the calling thread, no event loop) differ only in how a
script is executed and how content files are written; this base holds the rest so they cannot
drift apart. It imports no ``asyncio`` (issue #9).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mailwing.model import ContentInfo
from mailwing.storage.base import ScriptedStorage
from mailwing.storage.blobs import BlobStore, Offload
from mailwing.storage.errors import TemporaryStorageError
from mailwing.storage.migrate import load_migrations
from mailwing.storage.scripts_catchup import Changes, changes_and_claimed
from mailwing.storage.sqlite import catchup, inline
from mailwing.storage.steps import Script, q

__all__ = ["SqliteBase", "prepare_folder"]

T = TypeVar("T")

_MIGRATIONS = load_migrations("mailwing.storage.sqlite")


def prepare_folder(path: Path) -> None:
    """Create the database file's folder (a temporary failure if that is impossible)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TemporaryStorageError(f"cannot create {path.parent}: {exc}") from exc


def _collect_garbage(blobs: BlobStore, min_age: float) -> Script[int]:
    """Runs inside a write transaction, so no append can link a content between the listing
    and the unlinking."""
    removed = yield from inline.collect_inline(min_age)
    rows = yield q("SELECT sha256 FROM contents")
    return removed + blobs.remove_orphans({r[0] for r in rows}, min_age)


class SqliteBase(ScriptedStorage):
    MIGRATIONS = _MIGRATIONS
    LATEST_SCHEMA = _MIGRATIONS[-1].version
    BACKEND = "sqlite"
    SIZE_SQL = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"

    #: the catch-up in one statement (:mod:`.catchup`)
    _mail_changes_script = staticmethod(catchup.mail_changes)

    blobs: BlobStore
    #: how blocking file reads run: a worker thread, or the calling thread without a loop
    _offload: Offload

    async def catch_up(self, mailbox_id: int, since_modseq: int, *,
                       claim_from: int | None = None) -> tuple[Changes, int | None]:
        """The changes and the read-only half of the \\Recent claim in one read (one trip
        to the database thread instead of two); a claim that must raise the floor is a
        write of its own, as :meth:`claim_recent` makes it."""
        changes, claim, floor = await self._read(
            changes_and_claimed, self._mail_changes_script, mailbox_id, since_modseq,
            claim_from)
        if claim and floor is None:
            floor = await self._run(self._claim_recent_script(
                mailbox_id, volatile=not self.fsync_flag_changes))
        return changes, floor

    async def collect_garbage(self, min_age: float = 3600.0) -> int:
        """Remove stored bytes (inline rows and files) that no ``contents`` row points at
        and that are older than ``min_age`` seconds (left by a crash or by a delivery that
        never appended); return how many."""
        return await self._run(_collect_garbage(self.blobs, min_age))

    async def open_content(
        self, sha256: str, *, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[bytes]:
        """The database first (where small contents are, and where a content just finished
        is queued to go), then the file."""
        data = await self._read_content([sha256], inline.read_inline, sha256)
        if data is None:
            async for chunk in self.blobs.read(sha256, chunk_size, offload=self._offload):
                yield chunk
            return
        if len(data) <= chunk_size:
            if data:
                yield data
            return
        view = memoryview(data)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])

    async def read_contents(self, contents: Sequence[ContentInfo]) -> dict[str, bytes]:
        """Like :meth:`open_content` for many at once: the database-held ones in one query
        (in the queue's order, so after a content just finished), the rest as files in one
        thread hop; a content in neither place is gone and left out."""
        wanted = list(dict.fromkeys(content.sha256 for content in contents))
        if not wanted:
            return {}
        found = await self._read_content(wanted, inline.read_inline_many, wanted)
        rest = [sha256 for sha256 in wanted if sha256 not in found]
        if rest:
            try:
                found.update(await self._offload(self.blobs.read_many, rest))
            except OSError as exc:
                raise TemporaryStorageError(f"cannot read contents: {exc}") from exc
        return found

    async def content_stored(self, sha256: str) -> bool:
        """Whether the bytes of ``sha256`` are stored, in the database or as a file."""
        return await self._read_content([sha256], inline.stored, self.blobs, sha256)

    async def _read_content(self, sha256s: Sequence[str],
                            script: Callable[..., Script[T]], *args: Any) -> T:
        """A read of the stored bytes of ``sha256s``: the only reads that can see a
        content insertion still on its way (:meth:`.runner.SqliteRunner.post`), which the
        threaded storage orders them behind."""
        return await self._read(script, *args)
