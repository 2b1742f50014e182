"""The multi-node backend: everything, contents included, in one PostgreSQL database.

The operations are the shared scripts (:mod:`mailwing.storage.scripts`), each driven with
``await`` inside one transaction on a pooled asyncpg connection. READ COMMITTED is enough:
the UID allocation is an ``UPDATE mailboxes ... RETURNING`` whose row lock serialises
concurrent appends to one mailbox until commit (RFC 3501 section 2.3.1.1 needs strictly
ascending, never reused UIDs), and schema upgrades take an advisory lock. Read-only scripts
run in REPEATABLE READ so that their several queries see one snapshot (``mail_changes``).

A transaction that raises mailboxes' HIGHESTMODSEQ sends ``NOTIFY mailwing_changes`` with
each mailbox id (delivered at commit, to every node); :mod:`.listen` receives them for
``wait_for_change``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import closing
from typing import Any, Literal, TypeVar, cast

import asyncpg
import asyncpg.pool

from mailwing.storage import steps
from mailwing.storage.base import ScriptedStorage
from mailwing.storage.interface import ContentWriter
from mailwing.storage.migrate import load_migrations
from mailwing.storage.notify import ChangeWaiters
from mailwing.storage.postgres.content import PgContentWriter, read_pieces
from mailwing.storage.postgres.errors import BROKEN_CONNECTION, pg_errors
from mailwing.storage.postgres.gc import collect_garbage
from mailwing.storage.postgres.listen import CHANNEL, PgListener
from mailwing.storage.steps import Script, advance

__all__ = ["PostgresStorage"]

T = TypeVar("T")
#: what a transaction script runs on: a pooled connection (or a plain one)
_Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
_Isolation = Literal["read_committed", "repeatable_read"]

_MIGRATIONS = load_migrations("mailwing.storage.postgres")


@functools.lru_cache(maxsize=256)
def to_pg_sql(sql: str) -> str:
    """``col @IN($n)`` becomes ``col = ANY($n)`` (the parameter is sent as an array);
    ``@HASFLAG(col, $n)`` becomes ``$n = ANY(col)``."""
    sql = steps.IN_LIST.sub(r"= ANY($\1)", sql)
    return steps.HAS_FLAG.sub(r"($\2 = ANY(\1))", sql)


def _adapt(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(value)
    return value


class PostgresStorage(ScriptedStorage):
    MIGRATIONS = _MIGRATIONS
    LATEST_SCHEMA = _MIGRATIONS[-1].version
    BACKEND = "postgresql"
    SIZE_SQL = "SELECT pg_database_size(current_database())"

    def __init__(self, pool: asyncpg.Pool, url: str | None = None) -> None:
        self._pool = pool
        self._waiters = ChangeWaiters()
        self._listener = PgListener(url, self._waiters) if url else None

    @classmethod
    async def open(
        cls, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0
    ) -> PostgresStorage:
        with pg_errors():
            pool = await asyncpg.create_pool(
                url, min_size=min_size, max_size=max_size, timeout=timeout,
                command_timeout=60.0,
            )
        return cls(pool, url)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self._pool.close()

    async def _start_listening(self) -> None:
        if self._listener is not None:
            await self._listener.ensure()

    async def _run(self, script: Script[T], *, write: bool = True) -> T:
        with pg_errors():
            async with self._pool.acquire() as conn:
                try:
                    isolation: _Isolation = "read_committed" if write else "repeatable_read"
                    async with conn.transaction(isolation=isolation, readonly=not write):
                        return await self._drive(conn, script)
                except BROKEN_CONNECTION:
                    conn.terminate()  # the pool opens a fresh one instead of reusing it
                    raise

    async def _drive(self, conn: _Conn, script: Script[T]) -> T:
        with closing(script):
            done, item = advance(script, None)
            while not done:
                done, item = advance(script, await self._step(conn, item))
            return cast(T, item)

    async def _step(self, conn: _Conn, step: Any) -> Any:
        if isinstance(step, steps.Query):
            return await conn.fetch(to_pg_sql(step.sql), *[_adapt(a) for a in step.args])
        if isinstance(step, steps.Batch):
            return await conn.execute(step.sql)
        if isinstance(step, steps.TableExists):
            return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", step.name)
        if isinstance(step, steps.Changed):
            for mailbox_id in step.mailbox_ids:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(mailbox_id))
            return None
        if isinstance(step, steps.Serialize):
            return await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", step.key)
        if isinstance(step, steps.HasBlob):
            row = await conn.fetchval(
                "SELECT 1 FROM content_chunks WHERE sha256 = $1 AND seq = 0 FOR SHARE",
                step.sha256,
            )
            return row is not None
        if isinstance(step, steps.DropBlobs):
            return await conn.execute(
                "DELETE FROM content_chunks WHERE sha256 = ANY($1)", list(step.sha256s)
            )
        raise TypeError(f"unknown step {step!r}")

    async def collect_garbage(self, min_age: float = 3600.0) -> int:
        """Remove abandoned staging pieces, unlinked pieces and unreferenced contents older
        than ``min_age`` seconds (see :mod:`.gc`); return how many."""
        with pg_errors():
            return await collect_garbage(self._pool, min_age)

    def new_content(self) -> ContentWriter:
        return PgContentWriter(self._pool)

    def open_content(self, sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        return read_pieces(self._pool, sha256, chunk_size)
