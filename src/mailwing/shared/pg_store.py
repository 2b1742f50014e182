"""Failure and connection counts in the PostgreSQL database itself (unlogged tables, schema 6).

Used when the database is PostgreSQL and no Redis is configured: nodes already share it, so no
other service is needed. ``mw_auth_failures`` holds one row per recent failure (key, time),
pruned of rows older than the window at most once a minute per worker; ``mw_connections``
holds each worker's published per-IP counts with the time of publication. Both are
``UNLOGGED``: no WAL, and a database crash merely forgets them. A small pool of its own (two
connections per worker) keeps these quick queries out of the mail path's pool.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import asyncpg

from mailwing.shared.limits import STALE_AFTER

__all__ = ["PgConnections", "PgFailures", "open_pool"]

_PRUNE_EVERY = 60.0
#: seconds for which a key this worker just counted at zero needs no DELETE on success
_CLEAN_FOR = 5.0
#: keys remembered so at most (more: the memory is dropped, and DELETEs are sent again)
_CLEAN_KEYS = 4096


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing. asyncpg's default sends ``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` after every use, a round
    trip of its own (a LOGIN pays two) for session state these queries never create."""


async def open_pool(url: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=0, max_size=2, timeout=5.0,
                                     command_timeout=5.0, reset=_keep_session)


class PgFailures:
    def __init__(self, pool: asyncpg.Pool, window: float, *, owns_pool: bool = True) -> None:
        self.pool = pool
        self.window = window
        self._owns_pool = owns_pool
        self._pruned = 0.0
        #: key -> monotonic time this worker counted it at zero (see :meth:`clear`)
        self._clean: dict[str, float] = {}

    async def counts(self, keys: list[str], now: float) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT key, count(*) AS n FROM mw_auth_failures WHERE key = ANY($1) AND at > $2"
            " GROUP BY key", keys, now - self.window)
        found = {r["key"]: int(r["n"]) for r in rows}
        if len(self._clean) > _CLEAN_KEYS:
            self._clean.clear()
        seen = time.monotonic()
        for key in keys:
            if found.get(key, 0):
                self._clean.pop(key, None)
            else:
                self._clean[key] = seen
        return [found.get(k, 0) for k in keys]

    async def add(self, keys: list[str], now: float) -> list[int]:
        for key in keys:
            self._clean.pop(key, None)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO mw_auth_failures (key, at) SELECT k, $2 FROM unnest($1::text[]) k",
                keys, now)
            if now - self._pruned > _PRUNE_EVERY:
                self._pruned = now
                await conn.execute("DELETE FROM mw_auth_failures WHERE at <= $1",
                                   now - self.window)
            rows = await conn.fetch(
                "SELECT key, count(*) AS n FROM mw_auth_failures WHERE key = ANY($1)"
                " AND at > $2 GROUP BY key", keys, now - self.window)
        found = {r["key"]: int(r["n"]) for r in rows}
        return [found.get(k, 0) for k in keys]

    async def clear(self, key: str) -> None:
        """Forget ``key``'s failures after a success. Skipped when this worker counted it at
        zero moments ago (the check before the password, nearly every LOGIN): a DELETE
        would find nothing but a failure another worker recorded in between, which is then
        kept, the careful side for a throttle."""
        seen = self._clean.pop(key, None)
        if seen is not None and time.monotonic() - seen < _CLEAN_FOR:
            return
        await self.pool.execute("DELETE FROM mw_auth_failures WHERE key = $1", key)

    async def close(self) -> None:
        if self._owns_pool:
            await self.pool.close()


class PgConnections:
    def __init__(self, pool: asyncpg.Pool, holder: str) -> None:
        self.pool = pool
        self.holder = holder
        self._others: dict[str, int] = {}
        self._last: dict[str, int] | None = None
        self._last_at = 0.0

    def changed(self, ip: str, delta: int) -> None:
        return None

    def others(self, ip: str) -> int:
        return self._others.get(ip, 0)

    async def publish(self, counts: Mapping[str, int]) -> None:
        now = time.time()
        live = {ip: n for ip, n in counts.items() if n > 0}
        async with self.pool.acquire() as conn:
            if live != self._last or now - self._last_at > STALE_AFTER / 2:
                async with conn.transaction():
                    await conn.execute("DELETE FROM mw_connections WHERE holder = $1",
                                       self.holder)
                    if live:
                        await conn.execute(
                            "INSERT INTO mw_connections (holder, ip, n, at)"
                            " SELECT $1, i, n, $4 FROM unnest($2::text[], $3::int[]) AS t(i, n)",
                            self.holder, list(live), list(live.values()), now)
                self._last, self._last_at = live, now
            rows = await conn.fetch(
                "SELECT ip, sum(n) AS n FROM mw_connections WHERE holder <> $1 AND at > $2"
                " GROUP BY ip", self.holder, now - STALE_AFTER)
        self._others = {r["ip"]: int(r["n"]) for r in rows}

    async def close(self) -> None:
        try:
            await self.pool.execute("DELETE FROM mw_connections WHERE holder = $1", self.holder)
        finally:
            await self.pool.close()
