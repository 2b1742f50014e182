"""asyncpg exceptions mapped to :mod:`mailwing.storage.errors`, at one boundary.

Constraint violations become the domain errors (a duplicate name is ``AlreadyExists``, a
missing referenced row ``NotFound``); anything a retry may cure (the server unreachable,
restarting, out of connections or disk, a deadlock or serialisation failure, a timeout)
becomes ``TemporaryStorageError`` so sessions answer "try again later" (SMTP 451, RFC 5321
section 4.2.5). Other server errors become plain ``StorageError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from mailwing.storage.errors import AlreadyExists, NotFound, StorageError, TemporaryStorageError

__all__ = ["BROKEN_CONNECTION", "map_pg_error", "pg_errors"]

#: Errors after which a pooled connection must not be reused.
BROKEN_CONNECTION: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # includes CannotConnectNowError, shutdown
    asyncpg.exceptions.InsufficientResourcesError,  # includes TooManyConnectionsError
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialisation failure
    asyncpg.InterfaceError,  # connection closed under us
    asyncpg.exceptions.InternalClientError,  # protocol state broken by a dropped connection
    OSError,
    TimeoutError,
)
_TEMPORARY = BROKEN_CONNECTION


def map_pg_error(exc: BaseException) -> BaseException:
    """The storage exception for ``exc``; non-driver exceptions are returned unchanged."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, asyncpg.UniqueViolationError):
        return AlreadyExists(str(exc))
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFound(f"a referenced row does not exist ({exc})")
    if isinstance(exc, _TEMPORARY):
        return TemporaryStorageError(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return StorageError(f"PostgreSQL: {exc}")
    return exc


@contextlib.contextmanager
def pg_errors() -> Iterator[None]:
    """Re-raise driver errors from the block as storage errors."""
    try:
        yield
    except Exception as exc:
        mapped = map_pg_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc
