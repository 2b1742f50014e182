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
from typing import TYPE_CHECKING, Any

from mailwing.storage.errors import (
    AlreadyExists,
    InUse,
    NotFound,
    OverQuota,
    SchemaOutdated,
    StorageError,
    TemporaryStorageError,
)

if TYPE_CHECKING:
    from mailwing.storage.common import redact_url
    from mailwing.storage.interface import ContentWriter, Delivery, Storage
    from mailwing.storage.sqlite.direct import DirectSqliteStorage

#: Loaded when first asked for (PEP 562): ``mailwing deliver`` through the LMTP socket
#: imports ``storage.errors`` (so this package) but needs neither the interface (a large
#: Protocol, datetime, the model) nor the URL helpers, once per message (issue #9).
_LAZY = {"ContentWriter": "interface", "Delivery": "interface", "Storage": "interface",
         "redact_url": "common"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

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
    "open_direct_storage",
    "open_storage",
    "redact_url",
]

_SQLITE_PREFIX = "sqlite:///"
_PG_PREFIXES = ("postgresql://", "postgres://")


def _sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; None for any other scheme."""
    if not url.startswith(_SQLITE_PREFIX):
        return None
    path = url[len(_SQLITE_PREFIX) :]
    if not path:
        raise ValueError("sqlite URL without a path: use sqlite:///path/to/mailwing.db")
    return Path(path)


async def open_storage(url: str, *, data_dir: Path, fsync_flag_changes: bool = False,
                       content_cache_size: int | None = None) -> Storage:
    """Open the storage that ``url`` names; ``data_dir`` holds content files (SQLite);
    ``fsync_flag_changes`` is the durability policy of flag changes, expunges and \\Recent
    claims (``storage.fsync_flag_changes``, see :class:`mailwing.storage.steps.Volatile`);
    ``content_cache_size`` the octets of contents kept in memory (PostgreSQL; None: the
    default of :mod:`mailwing.storage.contentcache`).

    Raises ValueError for an unknown URL scheme and TemporaryStorageError when the database
    cannot be reached."""
    path = _sqlite_path(url)
    if path is not None:
        from mailwing.storage.sqlite import SqliteStorage

        return await SqliteStorage.open(path, Path(data_dir),
                                        fsync_flag_changes=fsync_flag_changes)
    if url.startswith(_PG_PREFIXES):
        from mailwing.storage.contentcache import DEFAULT_CONTENT_CACHE_SIZE
        from mailwing.storage.postgres import PostgresStorage

        return await PostgresStorage.open(
            url, fsync_flag_changes=fsync_flag_changes,
            content_cache_size=DEFAULT_CONTENT_CACHE_SIZE if content_cache_size is None
            else content_cache_size)
    from mailwing.storage.common import redact_url

    raise ValueError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///... or postgresql://..."
    )


def open_direct_storage(url: str, *, data_dir: Path, fsync_flag_changes: bool = False
                        ) -> DirectSqliteStorage | None:
    """The storage of ``url`` run in the calling thread without an event loop
    (:mod:`mailwing.storage.sqlite.direct`), or None when the backend has none (PostgreSQL):
    then use :func:`open_storage`."""
    path = _sqlite_path(url)
    if path is None:
        return None
    from mailwing.storage.sqlite.direct import DirectSqliteStorage

    return DirectSqliteStorage.open(path, Path(data_dir), fsync_flag_changes=fsync_flag_changes)
