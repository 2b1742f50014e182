"""SQLite backend (stdlib ``sqlite3``): one database file plus content files in ``data_dir``.

:class:`SqliteStorage` is imported on first use: it brings the database thread and
``asyncio``, which the direct storage of ``mailwing deliver`` (:mod:`.direct`) must not load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailwing.storage.sqlite.backend import SqliteStorage

__all__ = ["SqliteStorage"]


def __getattr__(name: str) -> Any:
    if name == "SqliteStorage":
        from mailwing.storage.sqlite.backend import SqliteStorage

        return SqliteStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
