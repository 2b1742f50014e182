"""``mailwing db copy``: move a whole installation to another database (SQLite to
PostgreSQL, and back), keeping every id, UIDVALIDITY, UID and MODSEQ, so that IMAP and POP3
clients need not resynchronise.

How:

1. Both databases must be at the same schema version (the target is migrated first).
2. The source is read in one read transaction: a consistent snapshot, so the copy can run
   while the server runs. Every table the two schemas share is copied (discovered at run
   time, parents before children by their foreign keys), so tables added by later features
   come along without changes here. A table only one backend has (PostgreSQL's content
   pieces, its UNLOGGED per-IP counters) is not copied; one with rows is named in the report.
3. Contents go first, streamed through the target's content writer, which recomputes each
   SHA-256: a content whose bytes do not hash to its name stops the copy. Contents already
   in the target are kept (a second, catch-up run only sends what is new).
4. The rows go in one write transaction on the target: all or nothing.
5. Verification: each table's row count and an order-independent digest of its rows (values
   in one canonical form whatever the backend) must equal the source's, and every content of
   the target is read back and hashed.

A target holding data is refused unless ``force`` (replace it) or ``catch_up`` (it is an
earlier copy of the same source: copy again, reusing its contents, typically with the server
stopped for the final pass).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailwing.portability.endpoints import Endpoint, PgEndpoint, SqliteEndpoint, canonical
from mailwing.storage import open_storage, redact_url
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import Storage

__all__ = ["CopyError", "CopyReport", "copy_database", "sqlite_path", "table_digests"]

#: A target with rows in any of these holds an installation (other tables may hold rows
#: that migrations seed, like ``counters``; they are replaced without asking).
_DATA_TABLES = (
    "domains", "users", "mailboxes", "subscriptions", "mail", "contents", "queue",
)
_MASK = (1 << 128) - 1


class CopyError(Exception):
    """The copy cannot be made, or its verification failed; nothing was committed or the
    message says what to do."""


@dataclass(slots=True)
class CopyReport:
    tables: dict[str, tuple[int, str]] = field(default_factory=dict)  # rows, digest
    contents: int = 0
    contents_copied: int = 0
    contents_reused: int = 0
    bytes_copied: int = 0
    skipped: list[str] = field(default_factory=list)  # source tables the target lacks

    def lines(self) -> list[str]:
        out = [f"{name}: {rows} rows" for name, (rows, _) in sorted(self.tables.items())]
        out += [f"{name}: skipped (no such table in the target's schema)"
                for name in self.skipped]
        out.append(f"contents: {self.contents} ({self.contents_copied} copied, "
                   f"{self.bytes_copied} bytes; {self.contents_reused} already there)")
        out.append("verified: row counts, row digests and every content's SHA-256")
        return out


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


async def _endpoint(url: str) -> Endpoint:
    path = sqlite_path(url)
    if path is not None:
        return SqliteEndpoint(path)
    return await PgEndpoint.open(url)


def _order(parents: dict[str, set[str]], tables: Sequence[str]) -> list[str]:
    """Parents before children (Kahn); a cycle, if any, goes last in name order."""
    left = {t: {p for p in parents.get(t, set()) if p in tables} for t in tables}
    out: list[str] = []
    while left:
        ready = sorted(t for t, ps in left.items() if not ps)
        if not ready:
            ready = sorted(left)[:1]
        for t in ready:
            out.append(t)
            del left[t]
            for ps in left.values():
                ps.discard(t)
    return out


class _Digest:
    def __init__(self) -> None:
        self.rows = 0
        self.value = 0

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            h = hashlib.sha256(b"\x1f".join(canonical(v) for v in row)).digest()
            self.value = (self.value + int.from_bytes(h[:16], "big")) & _MASK
        self.rows += len(rows)

    def hex(self) -> str:
        return f"{self.value:032x}"


async def table_digests(ep: Endpoint, tables: Sequence[str]) -> dict[str, tuple[int, str]]:
    """(row count, digest) per table, columns in name order."""
    out = {}
    for table in tables:
        digest = _Digest()
        cols = sorted(await ep.columns(table))
        async for batch in ep.rows(table, cols):
            digest.add(batch)
        out[table] = (digest.rows, digest.hex())
    return out


async def _stored_digests(ep: Endpoint) -> list[str]:
    rows: list[str] = []
    async for batch in ep.rows("contents", ["sha256"]):
        rows.extend(str(r[0]) for r in batch)
    return rows


async def _target_has(target: Storage, tgt: Endpoint, sha256: str) -> bool:
    if isinstance(tgt, PgEndpoint):
        return bool(await tgt.conn.fetchval(
            "SELECT 1 FROM content_chunks WHERE sha256 = $1 AND seq = 0", sha256))
    # SQLite: in its database (a small content) or a file
    return bool(await target.content_stored(sha256))  # type: ignore[attr-defined]


async def _copy_content(source: Storage, src: Endpoint, target: Storage, sha256: str) -> int:
    chunks = (src.read_chunks(sha256) if isinstance(src, PgEndpoint)
              else source.open_content(sha256))
    writer = target.new_content()
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            await writer.write(chunk)
        info = await writer.finish()
    except NotFound as exc:
        await writer.abort()
        raise CopyError(f"content {sha256} vanished from the source while it was copied "
                        "(expunged meanwhile): run the copy again") from exc
    except BaseException:
        await writer.abort()
        raise
    if info.sha256 != sha256:
        raise CopyError(f"content {sha256} is corrupt in the source (its bytes hash to "
                        f"{info.sha256})")
    return size


async def _verify_contents(target: Storage, tgt: Endpoint) -> int:
    count = 0
    for sha in await _stored_digests(tgt):
        digest = hashlib.sha256()
        try:
            async for chunk in target.open_content(sha):
                digest.update(chunk)
        except NotFound as exc:
            raise CopyError(f"verification failed: content {sha} is missing") from exc
        if digest.hexdigest() != sha:
            raise CopyError(f"verification failed: content {sha} hashes to "
                            f"{digest.hexdigest()}")
        count += 1
    return count


async def _remove_orphans(target: Storage, tgt: Endpoint) -> None:
    if isinstance(tgt, PgEndpoint):
        await tgt.conn.execute(
            "DELETE FROM content_chunks WHERE sha256 NOT LIKE 'staging:%'"
            " AND sha256 NOT IN (SELECT sha256 FROM contents)")
    else:
        collect = getattr(target, "collect_garbage", None)
        if collect is not None:
            await collect(0.0)


async def copy_database(
    source_url: str, source_data_dir: Path, target_url: str, target_data_dir: Path, *,
    force: bool = False, catch_up: bool = False,
    notify: Callable[[str], None] = lambda line: None,
) -> CopyReport:
    """Copy everything from the source database to the target, then verify; see the module
    docstring. ``notify`` receives progress lines."""
    if redact_url(source_url) == redact_url(target_url) and source_data_dir == target_data_dir:
        raise CopyError("the source and the target are the same database")
    source = await open_storage(source_url, data_dir=source_data_dir, content_cache_size=0)
    target_data_dir.mkdir(parents=True, exist_ok=True)
    target = await open_storage(target_url, data_dir=target_data_dir, content_cache_size=0)
    src: Endpoint | None = None
    tgt: Endpoint | None = None
    try:
        version = await source.schema_version()
        if version != source.LATEST_SCHEMA:
            raise CopyError(f"the source schema is version {version}, this program needs "
                            f"{source.LATEST_SCHEMA}: run 'mailwing db upgrade' first")
        await target.upgrade()
        if await target.schema_version() != version:
            raise CopyError("the target schema version differs from the source's")
        src, tgt = await _endpoint(source_url), await _endpoint(target_url)
        return await _copy(source, src, target, tgt, force=force, catch_up=catch_up,
                           notify=notify)
    finally:
        for ep in (src, tgt):
            if ep is not None:
                await ep.rollback()
                await ep.close()
        await source.close()
        await target.close()


async def _copy(source: Storage, src: Endpoint, target: Storage, tgt: Endpoint, *,
                force: bool, catch_up: bool, notify: Callable[[str], None]) -> CopyReport:
    src_tables, tgt_tables = await src.tables(), await tgt.tables()
    report = CopyReport()
    for table in sorted(set(src_tables) - set(tgt_tables)):  # one backend's own tables
        if await src.count(table):
            report.skipped.append(table)
            notify(f"table {table} skipped: the target's schema has no such table")
    parents = await tgt.parents()
    for child, ps in (await src.parents()).items():
        parents.setdefault(child, set()).update(ps)
    order = _order(parents, tgt_tables)
    holding = [t for t in _DATA_TABLES if t in tgt_tables and await tgt.count(t)]
    if holding and not (force or catch_up):
        raise CopyError(f"the target already holds data (table {holding[0]}): use --force "
                        "to replace it, or --catch-up to update an earlier copy")
    report = CopyReport()
    await src.begin_read()  # the snapshot starts here
    wanted = await _stored_digests(src)
    notify(f"copying {len(wanted)} contents")
    for n, sha in enumerate(wanted, 1):
        if await _target_has(target, tgt, sha):
            report.contents_reused += 1
        else:
            report.bytes_copied += await _copy_content(source, src, target, sha)
            report.contents_copied += 1
        if n % 1000 == 0:
            notify(f"  {n}/{len(wanted)} contents")
    await tgt.begin_write()
    await tgt.clear(list(reversed(order)))
    expected: dict[str, tuple[int, str]] = {}
    for table in order:
        if table not in src_tables:
            continue
        tgt_cols = await tgt.columns(table)
        cols = sorted(c for c in await src.columns(table) if c in tgt_cols)
        digest = _Digest()
        async for batch in src.rows(table, cols):
            digest.add(batch)
            await tgt.insert(table, cols, tgt_cols, batch)
        expected[table] = (digest.rows, digest.hex())
        notify(f"  {table}: {digest.rows} rows")
    await tgt.after_insert(order)
    await tgt.commit()
    await src.commit()  # end of the snapshot
    await _remove_orphans(target, tgt)
    notify("verifying")
    got = await table_digests(tgt, list(expected))
    for table, want in expected.items():
        if got[table] != want:
            raise CopyError(f"verification failed for table {table}: source {want[0]} rows, "
                            f"target {got[table][0]} rows, or different contents")
    report.tables = got
    report.contents = await _verify_contents(target, tgt)
    if report.contents != len(set(wanted)):
        raise CopyError("verification failed: content counts differ")
    return report
