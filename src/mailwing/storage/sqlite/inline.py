"""Small message contents inside the SQLite database (schema 9), large ones as files.

Why: a content file costs two fsyncs of its own (the file, then its directory after the
rename), outside the database's group commit, for every message; at SMTP intake that was most
of the time (issue #9). A content of at most :data:`INLINE_LIMIT` octets (nearly all mail)
is instead a row of ``inline_contents``, named by its SHA-256 like a file, and the commit
that links the message makes those bytes durable too: with group commit (:mod:`.runner`), one
fsync for many messages. Larger contents stay fsynced files (:mod:`mailwing.storage.blobs`),
so a 25 MB message never sits in a database page or in memory. Contents stored as files
before schema 9 stay files and stay readable; nothing is migrated.

How the bytes reach the linking transaction without a commit of their own:
:meth:`InlineContentWriter.finish` hashes the bytes on the event loop and *posts* the
insertion to the database thread without waiting for it (:meth:`SqliteRunner.post`). That
thread runs its queue in order, so whatever the caller does next with the storage (the
``append`` or ``enqueue`` that links the content, or a read of it: such reads name the
contents they read and are queued behind a pending insertion of one of them) runs in the
same transaction as the insertion or a later one, and its answer comes only after that
commit.
An insertion that fails shows up there as the content not being stored (``NotFound``: the
SMTP client gets a temporary error and retries); a 250 is still never sent for bytes a crash
could lose. Bytes that no append ever links (an aborted delivery) are removed by garbage
collection after ``min_age``, like an orphan file.

Every reader goes through :meth:`SqliteStorage.open_content`, which asks the database first
and falls back to the file; ``HasBlob`` (the append's check that the bytes exist) and
``DropBlobs`` (the last entry of a content went away) handle both forms here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from mailwing.model import ContentInfo
from mailwing.storage.blobs import BlobStore, FileContentWriter
from mailwing.storage.steps import Script, q

__all__ = [
    "INLINE_LIMIT",
    "InlineContentWriter",
    "collect_inline",
    "drop_inline",
    "has_content",
    "json_array",
    "read_inline",
    "store_inline",
    "stored",
]

#: Contents of at most this many octets are kept in the database; larger ones are files.
INLINE_LIMIT = 64 * 1024


def json_array(values: Iterable[Any]) -> str:
    """A JSON array, as SQLite's ``json_each`` reads a list parameter. Whole numbers (ids,
    UIDs: what a delivery passes) are written here; anything else goes through :mod:`json`,
    imported on first use, as ``mailwing deliver`` would otherwise pay for it (issue #9)."""
    items = list(values)
    if all(type(v) is int for v in items):
        return "[" + ",".join(map(str, items)) + "]"
    import json

    return json.dumps(items)


def store_inline(sha256: str, data: bytes) -> Script[None]:
    """Insert the bytes, or renew ``created_at`` if they are stored already (dedupe; the
    renewal keeps garbage collection away until the coming append links them)."""
    yield q(
        "INSERT INTO inline_contents (sha256, data, created_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (sha256) DO UPDATE SET created_at = excluded.created_at",
        sha256, data, time.time(),
    )


def read_inline(sha256: str) -> Script[bytes | None]:
    rows = yield q("SELECT data FROM inline_contents WHERE sha256 = $1", sha256)
    return bytes(rows[0][0]) if rows else None


def read_inline_many(sha256s: list[str]) -> Script[dict[str, bytes]]:
    """The database-held ones among ``sha256s`` (FETCH of many small messages)."""
    rows = yield q("SELECT sha256, data FROM inline_contents WHERE sha256 @IN($1)", sha256s)
    return {str(r[0]): bytes(r[1]) for r in rows}


def stored(blobs: BlobStore, sha256: str) -> Script[bool]:
    """Whether the bytes are stored in either form (a read, for ``mailwing db copy``)."""
    rows = yield q("SELECT 1 FROM inline_contents WHERE sha256 = $1", sha256)
    return bool(rows) or blobs.exists(sha256)


def collect_inline(min_age: float) -> Script[int]:
    """Delete inline bytes that no ``contents`` row names and that were stored (or stored
    again) more than ``min_age`` seconds ago; return how many."""
    rows = yield q(
        "DELETE FROM inline_contents WHERE created_at < $1 AND NOT EXISTS"
        " (SELECT 1 FROM contents c WHERE c.sha256 = inline_contents.sha256)"
        " RETURNING sha256",
        time.time() - min_age,
    )
    return len(rows)


# -- steps, run by the database thread inside its transaction --------------------------------


def has_content(conn: sqlite3.Connection, blobs: BlobStore, sha256: str) -> bool:
    """``HasBlob``: in the database (this transaction holds the write lock, so nothing can
    delete the row before the commit) or, failing that, as a file."""
    row = conn.execute("SELECT 1 FROM inline_contents WHERE sha256 = ?", (sha256,)).fetchone()
    return row is not None or blobs.exists(sha256)


def drop_inline(conn: sqlite3.Connection, sha256s: tuple[str, ...]) -> int:
    """``DropBlobs``: inline bytes go in the same transaction as their ``contents`` rows (as
    on PostgreSQL); files are removed by the runner after the commit. Returns how many of
    them were inline (fewer than given: the others are files)."""
    cursor = conn.execute(
        "DELETE FROM inline_contents WHERE sha256 IN (SELECT value FROM json_each(?))",
        (json_array(sha256s),),
    )
    return cursor.rowcount


class InlineContentWriter(FileContentWriter):
    """A content writer that keeps contents of at most :data:`INLINE_LIMIT` octets in the
    database (see the module docstring) and writes larger ones as files, as before.

    ``post`` hands a write script inserting the content named by its second argument to
    the database thread without waiting for it."""

    def __init__(self, blobs: BlobStore, post: Callable[[Script[Any], str], None]) -> None:
        super().__init__(blobs)
        self._post = post

    async def finish(self) -> ContentInfo:
        if self._result is None and self._fd is None and self._buffered <= INLINE_LIMIT:
            # Hashing at most 64 KiB on the event loop costs less than a thread hop.
            data = b"".join(self._chunks)
            self._info.update(data)
            info = self._info.result()
            self._post(store_inline(info.sha256, data), info.sha256)
            self._chunks, self._buffered = [], 0
            self._result = info
        return await super().finish()
