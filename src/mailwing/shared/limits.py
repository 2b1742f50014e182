"""Failed-login counts and per-IP connection counts, shared by every worker and node.

An attacker spreading guesses over the workers of a node, or over the nodes behind a load
balancer, must meet the same limit as one talking to a single process; so must a client
opening connections. Where the counts live depends on the deployment:

* ``server.redis_url`` set: Redis (:mod:`.redis_store`), one round trip per login check;
* a PostgreSQL database: unlogged tables in it (:mod:`.pg_store`; unlogged because losing
  them in a database crash only forgets some recent failures, and they cost no WAL);
* SQLite: the node's shared memory (:mod:`.memory`), since a SQLite installation is one host;
* in-process only (tests, embedding): :class:`LocalFailures`.

Failures are checked and counted exactly (a round trip per login attempt is cheap next to the
Argon2 check it guards). Connections are different: a round trip per accepted connection
would put the database on every connection's path, so each worker counts its own and
*publishes* them every second; a limit check adds the others' last published counts. The
cross-node count therefore lags by up to about a second, and a published count that is not
refreshed (a dead worker or node) stops counting after :data:`STALE_AFTER` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from mailwing.services.throttle import FailureThrottle
from mailwing.shared.memory import ConnectionTable, FailureTable, NodeMemory

__all__ = [
    "STALE_AFTER",
    "ConnectionCounts",
    "FailureStore",
    "LocalFailures",
    "MemoryConnections",
    "MemoryFailures",
    "NoConnections",
    "SharedThrottle",
]

log = logging.getLogger("mailwing.limits")

#: Seconds after which a worker's published connection counts are ignored.
STALE_AFTER = 5.0
#: How often each worker publishes its connection counts (and reads the others').
PUBLISH_EVERY = 1.0


class FailureStore(Protocol):
    """Counts failures per key (``ip:<addr>`` and ``user:<address>``) over a window."""

    async def counts(self, keys: list[str], now: float) -> list[int]: ...
    async def add(self, keys: list[str], now: float) -> list[int]: ...
    async def clear(self, key: str) -> None: ...
    async def close(self) -> None: ...


class LocalFailures:
    """In this process only (tests, embedding, a single worker)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._t = FailureThrottle(window=window, max_per_ip=1, max_per_user=1, clock=clock)

    async def counts(self, keys: list[str], now: float) -> list[int]:
        cutoff = now - self._t.window
        return [self._t._by_ip.count(k, cutoff) for k in keys]

    async def add(self, keys: list[str], now: float) -> list[int]:
        cutoff = now - self._t.window
        return [self._t._by_ip.add(k, now, cutoff) for k in keys]

    async def clear(self, key: str) -> None:
        self._t._by_ip.clear(key)

    async def close(self) -> None:
        return None


class MemoryFailures:
    """In the node's shared memory: every worker of a SQLite installation."""

    def __init__(self, mem: NodeMemory, window: float) -> None:
        self._table = FailureTable(mem, window)

    async def counts(self, keys: list[str], now: float) -> list[int]:
        return [self._table.count(k, now) for k in keys]

    async def add(self, keys: list[str], now: float) -> list[int]:
        return [self._table.add(k, now) for k in keys]

    async def clear(self, key: str) -> None:
        self._table.clear(key)

    async def close(self) -> None:
        return None


class SharedThrottle:
    """The login throttle (same rules as :class:`FailureThrottle`) over a FailureStore.

    Store errors never lock users out nor let guesses through unchecked silently: they are
    logged and the check falls back to this process's own counts."""

    def __init__(self, store: FailureStore, *, window: float, max_per_ip: int,
                 max_per_user: int, delay_step: float = 0.5, delay_max: float = 3.0,
                 clock: Callable[[], float] = time.time, prefix: str = "") -> None:
        self.store = store
        self.window = window
        self.prefix = prefix  # keeps separate counts in one store ("admin:" for the console)
        self.max_per_ip = max_per_ip
        self.max_per_user = max_per_user
        self.delay_step = delay_step
        self.delay_max = delay_max
        self._clock = clock
        self._fallback = LocalFailures(window, clock)

    async def _call(self, name: str, *args: object) -> list[int]:
        try:
            counts: list[int] = await getattr(self.store, name)(*args)
        except Exception as exc:  # the store is down: degrade to this process's counts
            log.warning("shared failure counts unavailable (%s); using this process's", exc)
            counts = await getattr(self._fallback, name)(*args)
        return counts

    def _keys(self, ip: str, address: str | None) -> list[str]:
        return [f"{self.prefix}ip:{ip}"] + ([f"{self.prefix}user:{address}"] if address else [])

    async def is_throttled(self, ip: str, address: str | None) -> bool:
        keys = self._keys(ip, address)
        counts = await self._call("counts", keys, self._clock())
        if counts[0] >= self.max_per_ip:
            return True
        return len(counts) > 1 and counts[1] >= self.max_per_user

    async def record_failure(self, ip: str, address: str | None) -> float:
        keys = self._keys(ip, address)
        counts = await self._call("add", keys, self._clock())
        return min(self.delay_step * counts[0], self.delay_max)

    async def record_success(self, address: str) -> None:
        try:
            await self.store.clear(f"{self.prefix}user:{address}")
        except Exception as exc:
            log.warning("could not clear the failure count of %s: %s", address, exc)

    async def close(self) -> None:
        await self.store.close()


class ConnectionCounts(Protocol):
    """Live connections per IP held by *other* workers and nodes."""

    def changed(self, ip: str, delta: int) -> None: ...
    def others(self, ip: str) -> int: ...
    async def publish(self, counts: Mapping[str, int]) -> None: ...
    async def close(self) -> None: ...


class NoConnections:
    """Nothing shared: this worker's own counts are the whole truth."""

    def changed(self, ip: str, delta: int) -> None:
        return None

    def others(self, ip: str) -> int:
        return 0

    async def publish(self, counts: Mapping[str, int]) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryConnections:
    """The node's workers, through shared memory: exact and immediate."""

    def __init__(self, mem: NodeMemory, worker_index: int) -> None:
        self._table = ConnectionTable(mem, worker_index)

    def changed(self, ip: str, delta: int) -> None:
        self._table.add(ip, delta)

    def others(self, ip: str) -> int:
        return self._table.others(ip)

    async def publish(self, counts: Mapping[str, int]) -> None:
        return None

    async def close(self) -> None:
        return None


async def publish_forever(counts: ConnectionCounts, snapshot: Callable[[], Mapping[str, int]],
                          every: float = PUBLISH_EVERY) -> None:
    """Publish this worker's counts every ``every`` seconds until cancelled."""
    failing = False
    while True:
        try:
            await counts.publish(dict(snapshot()))
        except Exception as exc:  # the store is down: keep counting locally, say so once
            if not failing:
                log.warning("cannot publish connection counts (%s); other nodes' counts "
                            "are stale until it works again", exc)
            failing = True
        else:
            if failing:
                log.info("connection counts published again")
            failing = False
        await asyncio.sleep(every)
