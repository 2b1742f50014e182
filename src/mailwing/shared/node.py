"""Choosing and opening the shared stores, once per node and once per worker.

:func:`prepare_node` runs in ``mailwing serve``'s parent before the workers fork (shared
memory and the cache key must be inherited); :func:`open_worker` runs in each worker and
picks where limits are counted: Redis if ``server.redis_url`` is set, else the PostgreSQL
database when that is the backend, else the node's shared memory. A store that cannot be
reached at start-up is reported and the worker falls back to shared memory (limits then hold
per node instead of per cluster) rather than refusing to serve mail.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

from mailwing.config import Settings
from mailwing.shared.limits import (
    ConnectionCounts,
    FailureStore,
    MemoryConnections,
    MemoryFailures,
    SharedThrottle,
)
from mailwing.shared.memory import AuthCacheTable, NodeMemory

__all__ = ["NodeShared", "WorkerShared", "node_name", "open_worker", "prepare_node"]

log = logging.getLogger("mailwing.shared")


def node_name(settings: Settings) -> str:
    """``server.node_name``, or this host's name and the serving process's pid."""
    return settings.server.node_name or f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class NodeShared:
    memory: NodeMemory
    cache_key: bytes
    name: str


@dataclass
class WorkerShared:
    throttle: SharedThrottle
    connections: ConnectionCounts
    cache_table: AuthCacheTable
    where: str  # "redis", "postgresql" or "memory", for the start-up log
    admin_throttle: SharedThrottle | None = None
    _closers: list[Any] = field(default_factory=list)

    async def close(self) -> None:
        await self.throttle.close()
        await self.connections.close()


def prepare_node(settings: Settings) -> NodeShared:
    memory = NodeMemory(workers=settings.server.workers)
    return NodeShared(memory, secrets.token_bytes(32), node_name(settings))


async def open_worker(settings: Settings, node: NodeShared, index: int) -> WorkerShared:
    """The shared limits of worker ``index`` of this node."""
    auth = settings.auth
    holder = f"{node.name}/{os.getpid()}"
    failures: FailureStore
    connections: ConnectionCounts
    where = "memory"
    failures = MemoryFailures(node.memory, auth.failure_window)
    connections = MemoryConnections(node.memory, index)
    url = settings.database_url
    try:
        if settings.server.redis_url:
            from mailwing.shared import redis_store

            client = redis_store.connect(settings.server.redis_url)
            await client.ping()
            failures = redis_store.RedisFailures(client, auth.failure_window)
            connections = redis_store.RedisConnections(
                redis_store.connect(settings.server.redis_url), holder)
            where = "redis"
        elif url.startswith(("postgresql://", "postgres://")):
            from mailwing.shared import pg_store

            pool = await pg_store.open_pool(url)
            await pool.fetchval("SELECT count(*) FROM mw_connections WHERE false")
            failures = pg_store.PgFailures(pool, auth.failure_window, owns_pool=False)
            connections = pg_store.PgConnections(pool, holder)
            where = "postgresql"
    except Exception as exc:
        log.warning("shared limits: cannot use %s (%s); counting per node instead",
                    "Redis" if settings.server.redis_url else "PostgreSQL", exc)
    limits = {"window": auth.failure_window, "max_per_ip": auth.max_failures_per_ip,
              "max_per_user": auth.max_failures_per_user, "delay_step": auth.failure_delay,
              "delay_max": auth.failure_delay_max}
    throttle = SharedThrottle(failures, **limits)  # type: ignore[arg-type]
    # The admin listener's token checks: same store and limits, separate counts, so that a
    # guessing admin client does not lock mail users out of the same IP, nor the reverse.
    admin = SharedThrottle(failures, prefix="admin:", **limits)  # type: ignore[arg-type]
    return WorkerShared(throttle, connections, AuthCacheTable(node.memory), where,
                        admin_throttle=admin)
