"""Limits and the login cache shared beyond one process: node memory (forked workers),
PostgreSQL (nodes on one database) and Redis (``server.redis_url``)."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailwing.config import AuthSettings
from mailwing.services import passwords
from mailwing.services.auth import Authenticator, AuthOutcome, VerificationCache
from mailwing.shared.limits import (
    FailureStore,
    MemoryConnections,
    MemoryFailures,
    SharedThrottle,
)
from mailwing.shared.memory import AuthCacheTable, NodeMemory
from tests.conftest import open_test_storage
from tests.support import skip_or_fail

REDIS_URL = os.environ.get("MAILWING_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def in_child(fn: Any) -> int:
    """Run ``fn`` in a forked child (a worker); its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if fn() else 3
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# -- node memory: what one worker does, the others see --------------------------------------

def test_auth_cache_is_shared_by_forked_workers() -> None:
    mem = NodeMemory(workers=2)
    key = secrets.token_bytes(32)
    cache = VerificationCache(3600, table=AuthCacheTable(mem), key=key)
    assert in_child(lambda: cache.remember("a@x", "pw", "$hash") or True) == 0
    assert cache.hit("a@x", "pw", "$hash")
    assert not cache.hit("a@x", "other", "$hash")
    assert not cache.hit("a@x", "pw", "$new-hash")  # a password change: a different entry
    assert in_child(lambda: cache.hit("a@x", "pw", "$hash")) == 0


def test_auth_cache_expiry_is_jittered_and_sliding() -> None:
    now = [1000.0]
    mem = NodeMemory(workers=1)
    cache = VerificationCache(100, table=AuthCacheTable(mem), clock=lambda: now[0])
    for i in range(50):
        cache.remember(f"u{i}@x", "pw", "$h")
    now[0] += 89.0  # all live (expiries between +90 and +100)
    assert all(cache.hit(f"u{i}@x", "pw", "$h") for i in range(25))  # used: renewed
    now[0] += 50.0  # unused ones expired; used ones renewed at 1089 for 90..100 s
    assert all(cache.hit(f"u{i}@x", "pw", "$h") for i in range(25))
    assert not any(cache.hit(f"u{i}@x", "pw", "$h") for i in range(25, 50))
    # jitter: expiries of one burst are spread, not equal
    table = AuthCacheTable(mem)
    c2 = VerificationCache(1000, table=table, clock=lambda: 0.0, key=b"k" * 32)
    expiries = set()
    for i in range(20):
        c2.remember(f"v{i}@x", "pw", "$h")
        expiry = table.get(c2._digest(f"v{i}@x", "pw", "$h"))
        assert expiry is not None and 900 <= expiry <= 1000
        expiries.add(expiry)
    assert len(expiries) > 10


async def test_failures_and_connections_across_forked_workers() -> None:
    mem = NodeMemory(workers=2)
    failures = MemoryFailures(mem, window=300)
    mine = MemoryConnections(mem, 0)

    def worker1() -> bool:
        import asyncio

        other = MemoryConnections(mem, 1)
        other.changed("192.0.2.1", 1)
        other.changed("192.0.2.1", 1)
        asyncio.run(failures.add(["ip:192.0.2.1", "user:a@x"], 1000.0))
        return True

    assert in_child(worker1) == 0
    assert await failures.counts(["ip:192.0.2.1", "user:a@x", "ip:192.0.2.2"], 1001.0) == [1, 1, 0]
    assert await failures.add(["ip:192.0.2.1"], 1002.0) == [2]
    assert await failures.counts(["ip:192.0.2.1"], 1000.0 + 301 + 30) == [0]  # window passed
    assert mine.others("192.0.2.1") == 2 and mine.others("192.0.2.9") == 0
    MemoryConnections(mem, 1)  # a restarted worker 1 starts from zero
    assert mine.others("192.0.2.1") == 0


def test_failure_table_is_bounded() -> None:
    mem = NodeMemory(workers=1, failure_slots=64)
    from mailwing.shared.memory import FailureTable

    table = FailureTable(mem, window=300)
    for i in range(1000):  # far more keys than slots: no error, recent keys still counted
        table.add(f"ip:10.0.{i // 256}.{i % 256}", 1000.0)
    assert table.count("ip:10.0.3.231", 1000.0) == 1


# -- PostgreSQL and Redis: two "nodes" with stores of their own -------------------------------

@pytest.fixture(params=["postgresql", "redis"])
def shared_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_database_url"))
    return REDIS_URL


@pytest.fixture
async def two_nodes(shared_url: str, tmp_path: Path) -> AsyncIterator[tuple[Any, Any, Any, Any]]:
    if shared_url.startswith("postgresql"):
        from mailwing.shared import pg_store

        url = shared_url
        storage = await open_test_storage(url, tmp_path)
        await storage.close()
        pools = [await pg_store.open_pool(url) for _ in range(2)]
        fa = [pg_store.PgFailures(p, 300, owns_pool=False) for p in pools]
        ca = [pg_store.PgConnections(p, f"node{i}/1") for i, p in enumerate(pools)]
    else:
        from mailwing.shared import redis_store

        client = redis_store.connect(REDIS_URL)
        try:
            await client.ping()
        except Exception as exc:
            skip_or_fail(f"Redis not reachable at {REDIS_URL}: {exc}")
        await client.aclose()
        fa = [redis_store.RedisFailures(redis_store.connect(REDIS_URL), 300) for _ in range(2)]
        tag = uuid.uuid4().hex[:8]
        ca = [redis_store.RedisConnections(redis_store.connect(REDIS_URL), f"{tag}-node{i}/1")
              for i in range(2)]
    yield fa[0], fa[1], ca[0], ca[1]
    for c in ca:
        await c.close()
    for f in fa:
        await f.close()


def unique_ip() -> str:
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(256)}"


async def test_failures_counted_across_nodes(two_nodes: Any) -> None:
    a, b, _, _ = two_nodes
    ip, user = unique_ip(), f"user:{uuid.uuid4().hex}@x"
    assert await a.add([f"ip:{ip}", user], 1000.0) == [1, 1]
    assert await b.add([f"ip:{ip}"], 1001.0) == [2]
    assert await a.counts([f"ip:{ip}", user], 1002.0) == [2, 1]
    await b.clear(user)
    assert await a.counts([f"ip:{ip}", user], 1002.0) == [2, 0]
    assert await a.counts([f"ip:{ip}"], 1000.5 + 300) == [1]  # the first one left the window


async def test_connections_published_across_nodes(two_nodes: Any) -> None:
    _, _, a, b = two_nodes
    ip = unique_ip()
    await a.publish({ip: 3, "192.0.2.200": 0})
    await b.publish({ip: 1})
    assert b.others(ip) == 3
    await a.publish({ip: 1})
    assert a.others(ip) == 1  # b's count
    await a.publish({})
    await b.publish({})
    assert b.others(ip) == 0


async def test_throttle_limit_holds_across_nodes(two_nodes: Any, sqlite_store: Any) -> None:
    fa, fb, _, _ = two_nodes
    await sqlite_store.add_user("alice@example.org", passwords.hash_password("right"),
                                create_domain=True)
    settings = AuthSettings(max_failures_per_ip=4, max_failures_per_user=100,
                            failure_delay=0, failure_delay_max=0)

    def node(store: FailureStore) -> Authenticator:
        throttle = SharedThrottle(store, window=300, max_per_ip=4, max_per_user=100,
                                  delay_step=0, delay_max=0)
        return Authenticator(sqlite_store, settings, throttle=throttle)

    n1, n2 = node(fa), node(fb)
    ip = unique_ip()
    for i in range(4):  # spread over both nodes: 2 each
        r = await (n1 if i % 2 else n2).authenticate("alice@example.org", "bad", peer_ip=ip)
        assert r.outcome is AuthOutcome.BAD_CREDENTIALS
    for n in (n1, n2):
        r = await n.authenticate("alice@example.org", "right", peer_ip=ip)
        assert r.outcome is AuthOutcome.THROTTLED
    r = await n1.authenticate("alice@example.org", "right", peer_ip=unique_ip())
    assert r.ok
    n1.close()
    n2.close()


# -- invalidation: a change on one node counts on the next login on every node ----------------

async def test_password_change_and_disable_on_another_node(store: Any, database_url: str,
                                                          tmp_path: Path) -> None:
    await store.add_user("bob@example.org", passwords.hash_password("old"), create_domain=True)
    other = await open_test_storage(database_url, tmp_path / "other", upgrade=False)
    settings = AuthSettings(failure_delay=0, failure_delay_max=0)
    node1 = Authenticator(store, settings)
    try:
        assert (await node1.authenticate("bob@example.org", "old", peer_ip="192.0.2.5")).ok
        before = node1.verifications
        assert (await node1.authenticate("bob@example.org", "old", peer_ip="192.0.2.5")).ok
        assert node1.verifications == before  # answered from the cache
        await other.set_password("bob@example.org", passwords.hash_password("new"))
        r = await node1.authenticate("bob@example.org", "old", peer_ip="192.0.2.5")
        assert r.outcome is AuthOutcome.BAD_CREDENTIALS
        assert (await node1.authenticate("bob@example.org", "new", peer_ip="192.0.2.5")).ok
        await other.set_enabled("bob@example.org", False)
        r = await node1.authenticate("bob@example.org", "new", peer_ip="192.0.2.5")
        assert r.outcome is AuthOutcome.DISABLED
        await other.delete_user("bob@example.org")
        r = await node1.authenticate("bob@example.org", "new", peer_ip="192.0.2.5")
        assert r.outcome is AuthOutcome.BAD_CREDENTIALS
    finally:
        node1.close()
        await other.close()


async def test_store_down_falls_back_to_this_process() -> None:
    class Down:
        async def counts(self, keys: list[str], now: float) -> list[int]:
            raise ConnectionError("store unreachable")

        add = counts

        async def clear(self, key: str) -> None:
            raise ConnectionError("store unreachable")

        async def close(self) -> None:
            return None

    throttle = SharedThrottle(Down(), window=300, max_per_ip=2, max_per_user=100,
                              delay_step=0, delay_max=0)
    assert not await throttle.is_throttled("192.0.2.1", "a@x")
    await throttle.record_failure("192.0.2.1", "a@x")
    await throttle.record_failure("192.0.2.1", "a@x")
    assert await throttle.is_throttled("192.0.2.1", "a@x")  # still limited, locally
    await throttle.record_success("a@x")  # logged, not raised


async def test_two_workers_of_a_node_pay_for_one_verification(sqlite_store: Any) -> None:
    await sqlite_store.add_user("w@example.org", passwords.hash_password("pw"),
                                create_domain=True)
    mem, key = NodeMemory(workers=2), secrets.token_bytes(32)
    settings = AuthSettings(failure_delay=0, failure_delay_max=0)
    workers = [Authenticator(sqlite_store, settings,
                             cache=VerificationCache(3600, table=AuthCacheTable(mem), key=key))
               for _ in range(2)]
    try:
        for _ in range(3):
            for w in workers:
                assert (await w.authenticate("w@example.org", "pw", peer_ip="192.0.2.3")).ok
        assert sum(w.verifications for w in workers) == 1  # not one per worker
    finally:
        for w in workers:
            w.close()
