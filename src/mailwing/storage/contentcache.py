"""Message contents kept in a process's memory by digest (``storage.content_cache_size``).

Why this is safe without any invalidation: a content is stored under the SHA-256 of its
bytes and never changes afterwards. A copy read once stays right for as long as it is kept,
on every node, whatever other nodes do. Removal by the garbage collector only takes contents
that no message has referenced for ``gc_min_age``, and a copy still held here can only be
asked for through such a message.

Why the PostgreSQL backend uses it: there every FETCH of a body and every POP3 RETR sends the
bytes from the database server over a socket and decodes them in asyncpg. Under the IMAP
benchmarks that was about a tenth of a worker's CPU, plus the database server's. SQLite reads
its contents from a local file that the operating system's page cache already holds, so a
second copy would only cost memory there.

The bound is on octets, not entries: the least recently used contents go first. A content
larger than an eighth of the budget is not kept, so that one big attachment cannot push out
the many small messages that a mail client reads again and again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator

__all__ = ["DEFAULT_CONTENT_CACHE_SIZE", "ContentCache", "slices"]

#: octets per process (per worker): ``storage.content_cache_size``'s default
DEFAULT_CONTENT_CACHE_SIZE = 32 * 1024 * 1024


class ContentCache:
    """At most ``budget`` octets of contents by digest, least recently used out first."""

    __slots__ = ("_data", "_used", "budget", "hits", "max_item", "misses")

    def __init__(self, budget: int) -> None:
        self.budget = max(0, budget)
        self.max_item = self.budget // 8
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._used = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def used(self) -> int:
        """Octets held now (never above ``budget``)."""
        return self._used

    def get(self, sha256: str, size: int | None = None) -> bytes | None:
        """The bytes of ``sha256`` when held (and of ``size`` octets, when given: a content
        of another length under the same key is not the one asked for)."""
        data = self._data.get(sha256)
        if data is None or (size is not None and len(data) != size):
            self.misses += 1
            return None
        self._data.move_to_end(sha256)
        self.hits += 1
        return data

    def put(self, sha256: str, data: bytes) -> None:
        """Keep ``data`` under ``sha256`` unless it is too big; make room by dropping the
        least recently used."""
        if not self.budget or len(data) > self.max_item or sha256 in self._data:
            return
        self._data[sha256] = data
        self._used += len(data)
        while self._used > self.budget:
            _, dropped = self._data.popitem(last=False)
            self._used -= len(dropped)


async def slices(data: bytes, chunk_size: int) -> AsyncIterator[bytes]:
    """``data`` in the pieces ``Storage.open_content`` streams (``chunk_size`` octets, the
    last one shorter; nothing for an empty content)."""
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start:start + chunk_size])
