"""Raw, table-level access to a mailwing database, for :mod:`.dbcopy` and :mod:`.backup`.

Why not the storage interface: a copy must carry *everything*, including tables that other
features add later (and that the interface knows nothing about), with their ids, UIDs and
MODSEQs exactly as they are. So the copy works on tables and columns discovered at run time
(``sqlite_master`` / ``information_schema``), in the order their foreign keys require, and
only converts values between the two backends' representations (SQLite keeps timestamps as
ISO text, booleans as 0/1 and flag sets as space-separated text; PostgreSQL as
``timestamptz``, ``boolean`` and ``text[]``).

A source endpoint reads inside one read transaction (SQLite in WAL mode, PostgreSQL
REPEATABLE READ), so a copy taken while the server runs is a consistent snapshot.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from mailwing.storage.common import encode_flags, iso_utc, to_datetime

__all__ = ["Endpoint", "PgEndpoint", "SqliteEndpoint", "canonical"]

#: Tables a copy never carries as rows: the schema history (each side migrates itself) and
#: the content bytes of either backend, PostgreSQL's pieces and SQLite's small contents
#: (copied as contents, verified by digest).
SKIP_TABLES = frozenset({"schema_version", "content_chunks", "inline_contents"})
BATCH = 2000


def canonical(value: Any) -> bytes:
    """One byte form per value whatever the backend, for row digests."""
    if value is None:
        return b"\x00"
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, datetime):
        return iso_utc(value).encode()
    if isinstance(value, list | tuple):
        return encode_flags(str(v) for v in value).encode()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex().encode()
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def to_pg(value: Any, kind: str) -> Any:
    """A SQLite value for a PostgreSQL column of type ``kind`` (information_schema name)."""
    if value is None:
        return None
    if kind == "timestamp with time zone":
        return to_datetime(value)
    if kind == "timestamp without time zone":
        return to_datetime(value).replace(tzinfo=None)
    if kind == "date":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if kind == "boolean":
        return bool(value)
    if kind == "ARRAY":
        return value if isinstance(value, list) else str(value).split()
    if kind == "uuid":
        return uuid.UUID(str(value))
    if kind in ("double precision", "real", "numeric"):
        return float(value)
    if kind in ("integer", "bigint", "smallint"):
        return int(value)
    if kind == "bytea":
        return bytes(value)
    return value


def to_sqlite(value: Any) -> Any:
    """A PostgreSQL value as SQLite keeps it (the storage layer's adapters)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, list):
        return encode_flags(value)
    if isinstance(value, uuid.UUID | date):
        return str(value)
    return value


class Endpoint:
    """One database, seen as tables. ``kind`` is ``"sqlite"`` or ``"postgresql"``."""

    kind = ""

    async def tables(self) -> list[str]: raise NotImplementedError
    async def columns(self, table: str) -> dict[str, str]: raise NotImplementedError
    async def parents(self) -> dict[str, set[str]]: raise NotImplementedError
    async def count(self, table: str) -> int: raise NotImplementedError
    def rows(self, table: str, cols: Sequence[str]) -> AsyncIterator[list[tuple[Any, ...]]]:
        raise NotImplementedError
    async def begin_read(self) -> None: raise NotImplementedError
    async def begin_write(self) -> None: raise NotImplementedError
    async def commit(self) -> None: raise NotImplementedError
    async def rollback(self) -> None: raise NotImplementedError
    async def clear(self, tables: Sequence[str]) -> None: raise NotImplementedError
    async def insert(self, table: str, cols: Sequence[str], kinds: dict[str, str],
                     rows: list[tuple[Any, ...]]) -> None: raise NotImplementedError
    async def after_insert(self, tables: Sequence[str]) -> None: return None
    async def close(self) -> None: raise NotImplementedError


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteEndpoint(Endpoint):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._lock = asyncio.Lock()

    async def _do(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._lock:
            return await asyncio.to_thread(lambda: self._conn.execute(sql, args).fetchall())

    async def tables(self) -> list[str]:
        rows = await self._do("SELECT name FROM sqlite_master WHERE type = 'table'"
                              " AND name NOT LIKE 'sqlite_%' ORDER BY name")
        return [r[0] for r in rows if r[0] not in SKIP_TABLES]

    async def columns(self, table: str) -> dict[str, str]:
        return {r[1]: str(r[2]).upper() for r in await self._do(f"PRAGMA table_info({_q(table)})")}

    async def parents(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for table in await self.tables():
            rows = await self._do(f"PRAGMA foreign_key_list({_q(table)})")
            out[table] = {r[2] for r in rows if r[2] != table}
        return out

    async def count(self, table: str) -> int:
        return int((await self._do(f"SELECT count(*) FROM {_q(table)}"))[0][0])

    async def rows(self, table: str, cols: Sequence[str]) -> AsyncIterator[list[tuple[Any, ...]]]:
        sql = f"SELECT {', '.join(map(_q, cols))} FROM {_q(table)}"
        async with self._lock:
            cursor = await asyncio.to_thread(self._conn.execute, sql)
            while batch := await asyncio.to_thread(cursor.fetchmany, BATCH):
                yield batch

    async def begin_read(self) -> None:
        await self._do("BEGIN")
        await self._do("SELECT count(*) FROM sqlite_master")  # takes the snapshot now

    async def begin_write(self) -> None:
        await self._do("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        await self._do("COMMIT")

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await self._do("ROLLBACK")

    async def clear(self, tables: Sequence[str]) -> None:
        for table in tables:  # children first
            await self._do(f"DELETE FROM {_q(table)}")

    async def insert(self, table: str, cols: Sequence[str], kinds: dict[str, str],
                     rows: list[tuple[Any, ...]]) -> None:
        sql = (f"INSERT INTO {_q(table)} ({', '.join(map(_q, cols))})"
               f" VALUES ({', '.join('?' * len(cols))})")
        data = [tuple(to_sqlite(v) for v in row) for row in rows]
        async with self._lock:
            await asyncio.to_thread(self._conn.executemany, sql, data)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._conn.close)


class PgEndpoint(Endpoint):
    kind = "postgresql"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._tx: Any = None

    @classmethod
    async def open(cls, url: str) -> PgEndpoint:
        return cls(await asyncpg.connect(url, timeout=30))

    async def tables(self) -> list[str]:
        """Permanent tables only: UNLOGGED ones hold runtime state that a crash may lose
        anyway (per-IP counters shared by the nodes), nothing to copy."""
        rows = await self.conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            " AND c.relpersistence = 'p' ORDER BY c.relname")
        return [r[0] for r in rows if r[0] not in SKIP_TABLES]

    async def columns(self, table: str) -> dict[str, str]:
        rows = await self.conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema"
            " = current_schema() AND table_name = $1 ORDER BY ordinal_position", table)
        return {r[0]: r[1] for r in rows}

    async def identity_columns(self, table: str) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = $1 AND (is_identity = 'YES' OR column_default"
            " LIKE 'nextval(%')", table)
        return [r[0] for r in rows]

    async def parents(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {t: set() for t in await self.tables()}
        rows = await self.conn.fetch(
            "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
            " WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace")
        for child, parent in rows:
            child, parent = child.strip('"'), parent.strip('"')
            if child in out and child != parent:
                out[child].add(parent)
        return out

    async def count(self, table: str) -> int:
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {_q(table)}"))

    async def rows(self, table: str, cols: Sequence[str]) -> AsyncIterator[list[tuple[Any, ...]]]:
        sql = f"SELECT {', '.join(map(_q, cols))} FROM {_q(table)}"
        batch: list[tuple[Any, ...]] = []
        if self._tx is None:
            async with self.conn.transaction():
                async for record in self.conn.cursor(sql, prefetch=BATCH):
                    batch.append(tuple(record))
                    if len(batch) >= BATCH:
                        yield batch
                        batch = []
        else:
            async for record in self.conn.cursor(sql, prefetch=BATCH):
                batch.append(tuple(record))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    async def begin_read(self) -> None:
        self._tx = self.conn.transaction(isolation="repeatable_read", readonly=True)
        await self._tx.start()

    async def begin_write(self) -> None:
        self._tx = self.conn.transaction()
        await self._tx.start()

    async def commit(self) -> None:
        if self._tx is not None:
            await self._tx.commit()
            self._tx = None

    async def rollback(self) -> None:
        if self._tx is not None:
            await self._tx.rollback()
            self._tx = None

    async def clear(self, tables: Sequence[str]) -> None:
        if tables:
            await self.conn.execute(f"TRUNCATE {', '.join(map(_q, tables))} RESTART IDENTITY")

    async def insert(self, table: str, cols: Sequence[str], kinds: dict[str, str],
                     rows: list[tuple[Any, ...]]) -> None:
        data = [tuple(to_pg(v, kinds[c]) for v, c in zip(row, cols, strict=True))
                for row in rows]
        await self.conn.copy_records_to_table(table, records=data, columns=list(cols))

    async def after_insert(self, tables: Sequence[str]) -> None:
        """Identity sequences continue after the copied ids."""
        for table in tables:
            for col in await self.identity_columns(table):
                await self.conn.execute(
                    f"SELECT setval(pg_get_serial_sequence($1, $2),"
                    f" coalesce(max({_q(col)}), 1), max({_q(col)}) IS NOT NULL)"
                    f" FROM {_q(table)}", _q(table), col)

    async def read_chunks(self, sha256: str) -> AsyncIterator[bytes]:
        """A content's bytes, inside this connection's transaction (the snapshot)."""
        count = await self.conn.fetchval(
            "SELECT count(*) FROM content_chunks WHERE sha256 = $1", sha256)
        for seq in range(int(count or 0)):
            piece = await self.conn.fetchval(
                "SELECT data FROM content_chunks WHERE sha256 = $1 AND seq = $2", sha256, seq)
            yield bytes(piece)

    async def close(self) -> None:
        await self.conn.close()
