"""One shared memory region per node, made before the workers fork, with three tables in it.

Why shared memory and not a cache server: Dovecot's answer to "every login process pays for
Argon2 again" is one auth process per node that all login processes ask. mailwing's workers are
forked from one parent, so the same effect costs nothing to run: the parent maps an anonymous
``MAP_SHARED`` region and every worker inherits it. A verified password is then remembered
once per *node*, not once per worker, and no Redis round trip sits on the login path (Redis,
when configured, shares the *limits* between nodes; see :mod:`mailwing.shared.limits`).

Mutual exclusion is a POSIX record lock (``fcntl.lockf``) on an unlinked temporary file: held
for microseconds, and released by the kernel if a worker dies holding it (a SIGKILLed worker
cannot wedge the others, which a semaphore would allow). Each table is bounded, fixed size:

* :class:`AuthCacheTable`: 4-way set-associative slots of (32-byte HMAC digest, expiry);
* :class:`FailureTable`: per hashed key (``ip:...`` / ``user:...``), failure counts in ten
  time buckets of ``window / 10`` each, so a sliding window costs a few bytes per key;
* :class:`ConnectionTable`: one row per worker of live-connection counts per hashed IP; a
  worker writes only its own row and a restarted worker clears it, so a crash never leaks
  counts. Two IPs hashing to one cell are counted together (a stricter limit, never looser).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["AuthCacheTable", "ConnectionTable", "FailureTable", "NodeMemory"]

_AUTH_SLOT = struct.Struct("<32sd")  # digest, expiry (monotonic seconds)
_AUTH_WAYS = 4
_BUCKETS = 10
_FAIL_SLOT = struct.Struct("<Q" + "II" * _BUCKETS)  # key hash, (bucket number, count) x 10
_FAIL_PROBE = 8
_CONN = struct.Struct("<I")


class NodeMemory:
    """The region and its lock; create it in the parent, before forking workers."""

    def __init__(self, *, workers: int = 1, auth_slots: int = 1 << 16,
                 failure_slots: int = 1 << 14, connection_slots: int = 1 << 16,
                 lock_dir: Path | None = None) -> None:
        self.workers = workers
        self.auth_slots = auth_slots
        self.failure_slots = failure_slots
        self.connection_slots = connection_slots
        self._auth_off = 0
        self._fail_off = auth_slots * _AUTH_SLOT.size
        self._conn_off = self._fail_off + failure_slots * _FAIL_SLOT.size
        size = self._conn_off + workers * connection_slots * _CONN.size
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        fd, name = tempfile.mkstemp(prefix="mailwing-shared-", dir=lock_dir)
        os.unlink(name)
        self._lock_fd = fd

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fcntl.lockf(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.close(self._lock_fd)


class AuthCacheTable:
    """Digest -> expiry, for the verified-password cache (see services.auth)."""

    def __init__(self, mem: NodeMemory) -> None:
        self.mem = mem
        self.sets = mem.auth_slots // _AUTH_WAYS

    def _base(self, digest: bytes) -> int:
        index = int.from_bytes(digest[:4], "little") % self.sets
        return self.mem._auth_off + index * _AUTH_WAYS * _AUTH_SLOT.size

    def get(self, digest: bytes) -> float | None:
        """The expiry stored for ``digest``, or None."""
        base = self._base(digest)
        with self.mem.locked():
            for way in range(_AUTH_WAYS):
                stored, expires = _AUTH_SLOT.unpack_from(self.mem.buf, base + way * _AUTH_SLOT.size)
                if stored == digest:
                    return float(expires)
        return None

    def put(self, digest: bytes, expires: float, now: float) -> None:
        """Store or refresh ``digest``; evict an expired or the soonest-expiring way."""
        base = self._base(digest)
        with self.mem.locked():
            victim, victim_expiry = 0, float("inf")
            for way in range(_AUTH_WAYS):
                off = base + way * _AUTH_SLOT.size
                stored, old = _AUTH_SLOT.unpack_from(self.mem.buf, off)
                if stored == digest:
                    victim = way
                    break
                if old < victim_expiry:
                    victim, victim_expiry = way, old
            _AUTH_SLOT.pack_into(self.mem.buf, base + victim * _AUTH_SLOT.size, digest, expires)

    def drop(self, digest: bytes) -> None:
        base = self._base(digest)
        with self.mem.locked():
            for way in range(_AUTH_WAYS):
                off = base + way * _AUTH_SLOT.size
                if _AUTH_SLOT.unpack_from(self.mem.buf, off)[0] == digest:
                    _AUTH_SLOT.pack_into(self.mem.buf, off, bytes(32), 0.0)


def _key_hash(key: str) -> int:
    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"),
                                       digest_size=8).digest(), "little")
    return h or 1  # 0 marks a free slot


class FailureTable:
    """Failure counts per key over a sliding window of ten buckets."""

    def __init__(self, mem: NodeMemory, window: float) -> None:
        self.mem = mem
        self.bucket_width = max(window / _BUCKETS, 0.001)

    def _bucket(self, now: float) -> int:
        return int(now / self.bucket_width) & 0xFFFFFFFF

    def _live(self, fields: tuple[int, ...], current: int) -> int:
        total = 0
        for i in range(_BUCKETS):
            bucket, count = fields[1 + 2 * i], fields[2 + 2 * i]
            if 0 <= (current - bucket) & 0xFFFFFFFF < _BUCKETS:
                total += count
        return total

    def _find(self, h: int, current: int, *, create: bool) -> tuple[int, tuple[int, ...]] | None:
        start = h % self.mem.failure_slots
        oldest: tuple[int, int] | None = None  # (offset, live count)
        for probe in range(_FAIL_PROBE):
            off = self.mem._fail_off + ((start + probe) % self.mem.failure_slots) * _FAIL_SLOT.size
            fields = _FAIL_SLOT.unpack_from(self.mem.buf, off)
            if fields[0] == h:
                return off, fields
            live = self._live(fields, current)
            if fields[0] == 0 or live == 0:
                if create:
                    return off, (h,) + (0,) * (2 * _BUCKETS)
                continue
            if oldest is None or live < oldest[1]:
                oldest = (off, live)
        if create and oldest is not None:  # table crowded: reuse the quietest neighbour
            return oldest[0], (h,) + (0,) * (2 * _BUCKETS)
        return None

    def count(self, key: str, now: float) -> int:
        current = self._bucket(now)
        with self.mem.locked():
            found = self._find(_key_hash(key), current, create=False)
        return 0 if found is None else self._live(found[1], current)

    def add(self, key: str, now: float) -> int:
        current = self._bucket(now)
        with self.mem.locked():
            found = self._find(_key_hash(key), current, create=True)
            assert found is not None
            off, fields = found
            values = list(fields)
            i = current % _BUCKETS
            if values[1 + 2 * i] != current:
                values[1 + 2 * i], values[2 + 2 * i] = current, 0
            values[2 + 2 * i] += 1
            _FAIL_SLOT.pack_into(self.mem.buf, off, *values)
            return self._live(tuple(values), current)

    def clear(self, key: str) -> None:
        with self.mem.locked():
            found = self._find(_key_hash(key), 0, create=False)
            if found is not None:
                _FAIL_SLOT.pack_into(self.mem.buf, found[0], *((0,) * (1 + 2 * _BUCKETS)))


class ConnectionTable:
    """Live connections per hashed IP, one row per worker (each writes only its own)."""

    def __init__(self, mem: NodeMemory, worker_index: int) -> None:
        if not 0 <= worker_index < mem.workers:
            raise ValueError(f"worker index {worker_index} outside 0..{mem.workers - 1}")
        self.mem = mem
        self.row = mem._conn_off + worker_index * mem.connection_slots * _CONN.size
        row_bytes = mem.connection_slots * _CONN.size
        mem.buf[self.row:self.row + row_bytes] = bytes(row_bytes)  # a restarted worker's row

    def _cell(self, ip: str) -> int:
        return (_key_hash(ip) % self.mem.connection_slots) * _CONN.size

    def add(self, ip: str, delta: int) -> None:
        off = self.row + self._cell(ip)
        value = _CONN.unpack_from(self.mem.buf, off)[0] + delta
        _CONN.pack_into(self.mem.buf, off, max(value, 0))

    def others(self, ip: str) -> int:
        """Connections from ``ip`` held by the other workers of this node."""
        cell = self._cell(ip)
        total = 0
        stride = self.mem.connection_slots * _CONN.size
        for w in range(self.mem.workers):
            off = self.mem._conn_off + w * stride
            if off != self.row:
                total += _CONN.unpack_from(self.mem.buf, off + cell)[0]
        return total
