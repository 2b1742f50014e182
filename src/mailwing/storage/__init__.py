"""Storage: open a backend by URL; the interface and errors every layer above relies on.

``sqlite:///path`` (relative to the working directory, or absolute with a fourth slash) keeps
metadata and small contents in a SQLite file and larger contents as files under
``data_dir/blobs``;
``postgresql://...`` (or ``postgres://...``) keeps everything in PostgreSQL. Opening never
changes the schema: ``mailwing db upgrade`` calls :meth:`Storage.upgrade`, and servers call
:meth:`Storage.check_schema` before accepting connections.
"""

from __future__ import annotations

from pathlib import Path

from mailwing.storage.common import redact_url
from mailwing.storage.errors import (
    AlreadyExists,
    InUse,
    NotFound,
    OverQuota,
    SchemaOutdated,
    StorageError,
    TemporaryStorageError,
)
from mailwing.storage.interface import ContentWriter, Delivery, Storage

__all__ = [
    "AlreadyExists",
    "ContentWriter",
    "Delivery",
    "InUse",
    "NotFound",
    "OverQuota",
    "SchemaOutdated",
    "Storage",
    "StorageError",
    "TemporaryStorageError",
    "open_storage",
    "redact_url",
]

_SQLITE_PREFIX = "sqlite:///"
_PG_PREFIXES = ("postgresql://", "postgres://")


async def open_storage(url: str, *, data_dir: Path) -> Storage:
    """Open the storage that ``url`` names; ``data_dir`` holds content files (SQLite).

    Raises ValueError for an unknown URL scheme and TemporaryStorageError when the database
    cannot be reached."""
    if url.startswith(_SQLITE_PREFIX):
        from mailwing.storage.sqlite import SqliteStorage

        path = url[len(_SQLITE_PREFIX) :]
        if not path:
            raise ValueError("sqlite URL without a path: use sqlite:///path/to/mailwing.db")
        return await SqliteStorage.open(Path(path), Path(data_dir))
    if url.startswith(_PG_PREFIXES):
        from mailwing.storage.postgres import PostgresStorage

        return await PostgresStorage.open(url)
    raise ValueError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///... or postgresql://..."
    )
