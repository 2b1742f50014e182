"""Garbage collection for PostgreSQL, the counterpart of SQLite's ``collect_garbage``.

What it removes, each only when older than ``min_age`` (one hour by default):

* staging pieces (``staging:<uuid>``) of a content writer that never finished (a crashed or
  killed node mid-upload): the newest piece of the key must be old;
* published pieces (keyed by digest) that no ``contents`` row points at: a delivery that
  stored its bytes and then failed before appending, or a DSN whose settling lost its lease;
* ``contents`` rows that no mail and no queued message refer to (with their pieces): what a
  crash between an expunge and its orphan clean-up, or a finished outbound-only message,
  leaves behind.

Never taking bytes a delivery is about to link: a delivery writes (or, for bytes stored
already, *touches*) its pieces' ``created_at`` in the same advisory-locked transaction that
publishes them (:mod:`.content`), then links them in its append transaction, which checks
``HasBlob ... FOR SHARE``. The collector takes the same per-digest advisory lock, and re-reads
age and references under it, one digest per short transaction. So a digest is either removed
before the delivery publishes (which then stores the bytes afresh), or seen as fresh and
kept; it is never removed between the publishing and the linking, however long the delivery
takes, as long as it takes less than ``min_age``.
"""

from __future__ import annotations

import time

import asyncpg

__all__ = ["collect_garbage"]


async def collect_garbage(pool: asyncpg.Pool, min_age: float = 3600.0,
                          *, batch: int = 1000) -> int:
    """Remove what is described above; return the number of contents/keys removed."""
    cutoff = time.time() - min_age
    removed = 0
    staging = await pool.fetch(
        "SELECT sha256 FROM content_chunks WHERE sha256 LIKE 'staging:%' GROUP BY sha256"
        " HAVING max(created_at) < $1 LIMIT $2", cutoff, batch)
    for row in staging:
        async with pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "DELETE FROM content_chunks WHERE sha256 = $1 AND NOT EXISTS ("
                " SELECT 1 FROM content_chunks n WHERE n.sha256 = $1 AND n.created_at >= $2)",
                row["sha256"], cutoff)
        removed += done != "DELETE 0"
    loose = await pool.fetch(
        "SELECT k.sha256 FROM content_chunks k WHERE k.seq = 0 AND k.created_at < $1"
        " AND k.sha256 NOT LIKE 'staging:%'"
        " AND NOT EXISTS (SELECT 1 FROM contents c WHERE c.sha256 = k.sha256) LIMIT $2",
        cutoff, batch)
    for row in loose:
        removed += await _drop_loose(pool, row["sha256"], cutoff)
    unused = await pool.fetch(
        "SELECT c.sha256 FROM contents c WHERE c.created_at < to_timestamp($1)"
        " AND NOT EXISTS (SELECT 1 FROM mail m WHERE m.content_sha256 = c.sha256)"
        " AND NOT EXISTS (SELECT 1 FROM queue g WHERE g.content_sha256 = c.sha256) LIMIT $2",
        cutoff, batch)
    for row in unused:
        removed += await _drop_unused(pool, row["sha256"], cutoff)
    return removed


async def _drop_loose(pool: asyncpg.Pool, sha256: str, cutoff: float) -> int:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", sha256)
        still = await conn.fetchval(
            "SELECT 1 FROM content_chunks k WHERE k.sha256 = $1 AND k.seq = 0"
            " AND k.created_at < $2"
            " AND NOT EXISTS (SELECT 1 FROM contents c WHERE c.sha256 = $1)", sha256, cutoff)
        if not still:
            return 0
        await conn.execute("DELETE FROM content_chunks WHERE sha256 = $1", sha256)
    return 1


async def _drop_unused(pool: asyncpg.Pool, sha256: str, cutoff: float) -> int:
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", sha256)
            gone = await conn.fetchval(
                "DELETE FROM contents c WHERE c.sha256 = $1"
                " AND NOT EXISTS (SELECT 1 FROM mail m WHERE m.content_sha256 = c.sha256)"
                " AND NOT EXISTS (SELECT 1 FROM queue g WHERE g.content_sha256 = c.sha256)"
                " AND NOT EXISTS (SELECT 1 FROM content_chunks k WHERE k.sha256 = c.sha256"
                "  AND k.seq = 0 AND k.created_at >= $2)"  # re-used by a delivery just now
                " RETURNING sha256", sha256, cutoff)
            if gone is None:
                return 0
            await conn.execute("DELETE FROM content_chunks WHERE sha256 = $1", sha256)
    except asyncpg.ForeignKeyViolationError:
        return 0  # linked by a mail row committed meanwhile: keep it
    return 1
