"""Message contents inside PostgreSQL, as ~1 MiB ``bytea`` rows keyed by (sha256, seq).

Keeping the bytes in the database lets several mailwing nodes share one store without a shared
filesystem. A content smaller than one piece (nearly all mail) is inserted under its digest at
``finish()`` in one statement. Memory stays bounded both ways: the writer of a bigger one
inserts each full piece as soon as it has one, under a unique ``staging:`` key (the digest is
only known at the end), and ``finish()`` renames the pieces to the digest in one short
transaction, or drops them when the same content is stored already (dedupe; an advisory lock on
the digest orders two writers of the same bytes). The reader fetches a few rows per query. An
abandoned staging key (a crashed writer) is only wasted space.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import asyncpg

from mailwing.model import ContentInfo
from mailwing.storage.contentinfo import ContentInfoBuilder
from mailwing.storage.errors import NotFound, StorageError
from mailwing.storage.postgres.errors import pg_errors

__all__ = ["PIECE_SIZE", "PUBLISH_WHOLE", "PgContentWriter", "UnsavedContents",
           "publish_whole", "read_many", "read_pieces"]

PIECE_SIZE = 1024 * 1024
#: a content of one piece under its digest ($1: digest, $2: bytes; see :func:`publish_whole`)
PUBLISH_WHOLE = (
    "INSERT INTO content_chunks (sha256, seq, data)"
    " SELECT $1, 0, $2 FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS held"
    " ON CONFLICT (sha256, seq) DO UPDATE SET created_at = extract(epoch FROM now())"
)


async def publish_whole(pool: asyncpg.Pool, sha256: str, piece: bytes) -> None:
    """A content of one piece goes in under its digest directly, in one statement (one
    round trip, one commit) instead of a staging insert plus a renaming transaction.
    The statement takes the digest's advisory lock first, as :meth:`PgContentWriter._publish`
    does, and renews ``created_at`` when the bytes are stored already (dedupe), for :mod:`.gc`."""
    await pool.execute(PUBLISH_WHOLE, sha256, piece)


class UnsavedContents:
    """Contents of one piece whose writers finished without storing them, for the delivery
    that links each to store its bytes in the same statement (one round trip and one commit
    per SMTP message instead of two). Whatever else the storage is asked first stores the
    ones no delivery took yet (:meth:`save`), so ``finish()`` still means "stored" to every
    other caller.

    A delivery :meth:`take` gets the bytes and gives them back with :meth:`done` once its
    statement ended. Until then every other delivery of the same digest gets them too (it
    inserts them as well: the second insert waits for the first one's row lock, then renews
    the row or, when the first rolled back, inserts it), never a digest whose bytes are
    still in flight and not visible yet. :meth:`save` holds a lock, so a call that finds
    entries to store waits for a save under way."""

    def __init__(self) -> None:
        #: digest -> [bytes, finished writers no delivery took yet, deliveries under way]
        self._items: dict[str, list[Any]] = {}
        self._lock = asyncio.Lock()

    def __bool__(self) -> bool:
        """Whether some bytes are neither stored nor taken (cheap: nearly always empty)."""
        return any(entry[1] for entry in self._items.values())

    def put(self, sha256: str, data: bytes) -> None:
        entry = self._items.setdefault(sha256, [data, 0, 0])
        entry[1] += 1

    def take(self, sha256: str) -> bytes | None:
        """The bytes of ``sha256`` if they are not known to be stored; :meth:`done` after."""
        entry = self._items.get(sha256)
        if entry is None:
            return None
        entry[1] = max(0, entry[1] - 1)
        entry[2] += 1
        data: bytes = entry[0]
        return data

    def done(self, sha256: str) -> None:
        entry = self._items.get(sha256)
        if entry is not None:
            entry[2] -= 1
            if entry[1] <= 0 and entry[2] <= 0:
                del self._items[sha256]

    async def save(self, pool: asyncpg.Pool) -> None:
        async with self._lock:
            for sha256, entry in list(self._items.items()):
                if entry[1] > 0:
                    with pg_errors():
                        await publish_whole(pool, sha256, entry[0])
                    entry[1] = 0
                    if entry[2] <= 0:
                        self._items.pop(sha256, None)


class PgContentWriter:
    """A :class:`~mailwing.storage.interface.ContentWriter` into ``content_chunks``."""

    def __init__(self, pool: asyncpg.Pool, unsaved: UnsavedContents | None = None) -> None:
        self._pool = pool
        self._unsaved = unsaved
        self._key = f"staging:{uuid.uuid4().hex}"
        self._info = ContentInfoBuilder()
        self._buf = bytearray()
        self._seq = 0
        self._result: ContentInfo | None = None

    async def write(self, data: bytes) -> None:
        if self._result is not None:
            raise StorageError("content writer already finished")
        self._info.update(data)
        self._buf += data
        while len(self._buf) >= PIECE_SIZE:
            await self._insert(bytes(self._buf[:PIECE_SIZE]))
            del self._buf[:PIECE_SIZE]

    async def _insert(self, piece: bytes) -> None:
        with pg_errors():
            await self._pool.execute(
                "INSERT INTO content_chunks (sha256, seq, data) VALUES ($1, $2, $3)",
                self._key, self._seq, piece,
            )
        self._seq += 1

    async def finish(self) -> ContentInfo:
        if self._result is not None:
            return self._result
        try:
            info = self._info.result()
            if self._seq == 0 and self._unsaved is not None:
                # one piece (nearly all mail): stored by the delivery that links it, in
                # its own statement, or before any other storage call (UnsavedContents)
                self._unsaved.put(info.sha256, bytes(self._buf))
                self._buf.clear()
            elif self._seq == 0:  # one piece, no storage to leave it to: one statement
                with pg_errors():
                    await publish_whole(self._pool, info.sha256, bytes(self._buf))
                self._buf.clear()
            else:
                if self._buf:
                    await self._insert(bytes(self._buf))
                    self._buf.clear()
                with pg_errors():
                    await self._publish(info.sha256)
        except BaseException:
            await self.abort()
            raise
        self._result = info
        return info

    async def _publish(self, sha256: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", sha256)
            exists = await conn.fetchval(
                "SELECT 1 FROM content_chunks WHERE sha256 = $1 AND seq = 0", sha256
            )
            # created_at is renewed either way, under the digest's advisory lock, so that
            # garbage collection (.gc) leaves these bytes alone until they are linked.
            if exists:
                await conn.execute("DELETE FROM content_chunks WHERE sha256 = $1", self._key)
                await conn.execute(
                    "UPDATE content_chunks SET created_at = extract(epoch FROM now())"
                    " WHERE sha256 = $1 AND seq = 0", sha256)
            else:
                await conn.execute(
                    "UPDATE content_chunks SET sha256 = $2,"
                    " created_at = extract(epoch FROM now()) WHERE sha256 = $1",
                    self._key, sha256,
                )

    async def abort(self) -> None:
        self._buf.clear()
        if self._result is None and self._seq:
            self._seq = 0
            with pg_errors():
                await self._pool.execute("DELETE FROM content_chunks WHERE sha256 = $1", self._key)


#: pieces fetched per query by :func:`read_pieces` (it holds two batches: this one and the next)
READ_BATCH = 2


async def read_pieces(pool: asyncpg.Pool, sha256: str, chunk_size: int
                      ) -> AsyncGenerator[bytes, None]:
    """Yield a content's bytes in ``chunk_size`` slices, fetching up to :data:`READ_BATCH`
    stored pieces per query. The first query also counts the pieces (a window count, taken
    before its LIMIT), so a small content (one piece: nearly all mail) costs one round trip,
    and a content removed while being read is noticed (a batch that comes back short or out
    of sequence) instead of being cut silently. The next batch is fetched while the caller
    writes the current one out, so a big body streams without waiting for each query."""
    if sha256.startswith("staging:"):
        raise NotFound(f"content {sha256} is not stored")
    with pg_errors():
        rows = await pool.fetch(
            "SELECT seq, data, count(*) OVER () FROM content_chunks WHERE sha256 = $1"
            " ORDER BY seq LIMIT $2", sha256, READ_BATCH,
        )
    if not rows:
        raise NotFound(f"content {sha256} is not stored")
    count = int(rows[0][2])
    seq = 0
    ahead: asyncio.Task[list[asyncpg.Record]] | None = None
    try:
        while True:
            if len(rows) + seq < count:  # more to come: ask for it now
                ahead = asyncio.ensure_future(pool.fetch(
                    "SELECT seq, data FROM content_chunks WHERE sha256 = $1 AND seq >= $2"
                    " ORDER BY seq LIMIT $3", sha256, seq + len(rows), READ_BATCH,
                ))
            for row in rows:
                if row[0] != seq:
                    raise NotFound(f"content {sha256} was removed while being read")
                seq += 1
                piece: bytes = row[1]
                if len(piece) <= chunk_size:  # as it came: no copy (POP3 RETR asks for this)
                    yield piece
                    continue
                view = memoryview(piece)
                for start in range(0, len(view), chunk_size):
                    yield bytes(view[start : start + chunk_size])
            rows = []
            if seq >= count:
                return
            if ahead is None:
                raise NotFound(f"content {sha256} was removed while being read")
            with pg_errors():
                rows = await ahead
            ahead = None
            if not rows:
                raise NotFound(f"content {sha256} was removed while being read")
    finally:
        if ahead is not None and not ahead.done():
            ahead.cancel()
        elif ahead is not None and not ahead.cancelled():
            ahead.exception()  # retrieved: an error of an abandoned read is not logged


async def read_many(pool: asyncpg.Pool, contents: Sequence[ContentInfo]) -> dict[str, bytes]:
    """Several contents' bytes with one query, by digest. A content is left out unless its
    pieces come back complete (numbered from 0 without a gap, adding up to its size), so
    that one removed meanwhile is reported by the caller's single read as NotFound."""
    sizes = {c.sha256: c.size for c in contents if not c.sha256.startswith("staging:")}
    if not sizes:
        return {}
    rows = await pool.fetch(
        "SELECT sha256, seq, data FROM content_chunks WHERE sha256 = ANY($1)"
        " ORDER BY sha256, seq", list(sizes),
    )
    pieces: dict[str, list[bytes]] = {}
    for sha256, seq, data in rows:
        got = pieces.setdefault(sha256, [])
        if seq == len(got):
            got.append(data)
    found = {sha256: b"".join(got) for sha256, got in pieces.items()}
    return {sha256: data for sha256, data in found.items() if len(data) == sizes[sha256]}
