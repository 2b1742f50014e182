"""Failure and connection counts in Redis (``server.redis_url``), with redis-py's asyncio API.

* Failures: one sorted set per key (``mailwing:fail:<key>``) whose members are the failures'
  times; a check is ``ZCOUNT`` over the window, a failure is ``ZADD`` plus trimming and an
  ``EXPIRE`` of one window, so idle keys vanish by themselves. One pipelined round trip each.
* Connections: each worker writes its counts to its own hash (``mailwing:conn:<holder>``,
  expiring after :data:`~mailwing.shared.limits.STALE_AFTER` seconds) and registers itself in
  ``mailwing:conn:holders``; reading the others' counts is one more pipeline per second.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from mailwing.shared.limits import STALE_AFTER

__all__ = ["RedisConnections", "RedisFailures", "connect"]

_PREFIX = "mailwing:"


def connect(url: str) -> Any:
    """A client for ``url`` (connections are opened lazily, on first use)."""
    return aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


class RedisFailures:
    def __init__(self, client: Any, window: float) -> None:
        self.client = client
        self.window = window

    async def counts(self, keys: list[str], now: float) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.zcount(_PREFIX + "fail:" + key, now - self.window, "+inf")
        return [int(n) for n in await pipe.execute()]

    async def add(self, keys: list[str], now: float) -> list[int]:
        pipe = self.client.pipeline(transaction=True)
        for key in keys:
            name = _PREFIX + "fail:" + key
            pipe.zadd(name, {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.zremrangebyscore(name, "-inf", now - self.window)
            pipe.expire(name, max(1, int(self.window) + 1))
            pipe.zcard(name)
        results = await pipe.execute()
        return [int(results[i]) for i in range(3, len(results), 4)]

    async def clear(self, key: str) -> None:
        await self.client.delete(_PREFIX + "fail:" + key)

    async def close(self) -> None:
        await self.client.aclose()


class RedisConnections:
    def __init__(self, client: Any, holder: str) -> None:
        self.client = client
        self.holder = holder
        self._others: dict[str, int] = {}

    def changed(self, ip: str, delta: int) -> None:
        return None

    def others(self, ip: str) -> int:
        return self._others.get(ip, 0)

    async def publish(self, counts: Mapping[str, int]) -> None:
        now = time.time()
        mine = _PREFIX + "conn:" + self.holder
        holders = _PREFIX + "conn:holders"
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(mine)
        live = {ip: n for ip, n in counts.items() if n > 0}
        if live:
            pipe.hset(mine, mapping=live)
            pipe.expire(mine, int(STALE_AFTER))
        pipe.zadd(holders, {self.holder: now})
        pipe.zremrangebyscore(holders, "-inf", now - STALE_AFTER)
        pipe.zrange(holders, 0, -1)
        names = [h.decode() if isinstance(h, bytes) else str(h) for h in (await pipe.execute())[-1]]
        others = [h for h in names if h != self.holder]
        total: dict[str, int] = {}
        if others:
            pipe = self.client.pipeline(transaction=False)
            for h in others:
                pipe.hgetall(_PREFIX + "conn:" + h)
            for table in await pipe.execute():
                for ip, n in table.items():
                    key = ip.decode() if isinstance(ip, bytes) else str(ip)
                    total[key] = total.get(key, 0) + int(n)
        self._others = total

    async def close(self) -> None:
        try:
            await self.client.delete(_PREFIX + "conn:" + self.holder)
            await self.client.zrem(_PREFIX + "conn:holders", self.holder)
        finally:
            await self.client.aclose()
