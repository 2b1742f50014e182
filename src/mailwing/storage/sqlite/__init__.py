"""SQLite backend (stdlib ``sqlite3``): one database file plus content files in ``data_dir``."""

from mailwing.storage.sqlite.backend import SqliteStorage

__all__ = ["SqliteStorage"]
