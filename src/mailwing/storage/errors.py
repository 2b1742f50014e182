"""The storage layer's own exceptions.

Backends map their driver errors (sqlite3, asyncpg, OSError on blob files) to these at their
boundary, so that protocol sessions can choose a reply (POP3 ``-ERR [SYS/TEMP]``, SMTP ``451``,
IMAP ``NO [UNAVAILABLE]``) without knowing which database is underneath.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "InUse",
    "NotFound",
    "OverQuota",
    "SchemaOutdated",
    "StorageError",
    "TemporaryStorageError",
]


class StorageError(Exception):
    """Base class of every storage failure."""


class TemporaryStorageError(StorageError):
    """The database or disk failed in a way that retrying later may fix (locked, disconnected,
    disk full). Nothing was half-written: the transaction was rolled back."""


class NotFound(StorageError):
    """The named domain, user, mailbox or content does not exist."""


class AlreadyExists(StorageError):
    """A domain, user or mailbox with that name exists already."""


class InUse(StorageError):
    """The object cannot be removed while others depend on it (a domain that still has users)."""


class SchemaOutdated(StorageError):
    """The database schema is older (or newer) than this program; the message says what to run."""


class OverQuota(StorageError):
    """The change would take a user's storage use past its quota (RFC 9208 ``[OVERQUOTA]``,
    SMTP ``552 5.2.2``); nothing was stored. ``address`` names the user."""

    def __init__(self, message: str, address: str = "") -> None:
        super().__init__(message)
        self.address = address
