"""The per-process cache of message contents (storage.content_cache_size, PostgreSQL).

A content is immutable under its digest, so once read it is served from memory: the tests
prove it by removing the stored rows behind the storage's back, after which only the cache
can still answer. With a size of 0 nothing is kept and the same read reports the content
gone, as before the cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from mailwing.config import Settings
from mailwing.storage.contentcache import DEFAULT_CONTENT_CACHE_SIZE, ContentCache, slices
from mailwing.storage.errors import NotFound
from mailwing.storage.postgres import PostgresStorage

BODY = b"Subject: cached\r\n\r\n" + b"x" * 3000 + b"\r\n"


def test_the_budget_bounds_the_octets_held_least_recent_out_first() -> None:
    cache = ContentCache(8000)  # items up to 1000 octets
    for name in "abcdefgh":
        cache.put(name, name.encode() * 1000)
    assert cache.used == 8000 and len(cache) == 8
    assert cache.get("a") == b"a" * 1000  # a is now the most recent
    cache.put("i", b"i" * 1000)
    assert cache.get("b") is None  # the least recent went
    assert cache.get("a") is not None and cache.used == 8000


def test_a_content_over_an_eighth_of_the_budget_is_not_kept() -> None:
    cache = ContentCache(8000)
    cache.put("big", b"b" * 1001)
    assert cache.get("big") is None and cache.used == 0


def test_a_size_that_does_not_match_is_a_miss() -> None:
    cache = ContentCache(8000)
    cache.put("k", b"12345")
    assert cache.get("k", 6) is None
    assert cache.get("k", 5) == b"12345"
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_zero_budget_keeps_nothing() -> None:
    cache = ContentCache(0)
    cache.put("k", b"")
    cache.put("l", b"x")
    assert len(cache) == 0


async def test_slices_are_the_chunks_open_content_streams() -> None:
    assert [c async for c in slices(b"abcdefg", 3)] == [b"abc", b"def", b"g"]
    assert [c async for c in slices(b"", 3)] == []


def test_the_setting_defaults_to_the_cache_default() -> None:
    assert Settings().storage.content_cache_size == DEFAULT_CONTENT_CACHE_SIZE


async def _store(url: str, size: int) -> PostgresStorage:
    store = await PostgresStorage.open(url, min_size=1, max_size=2, content_cache_size=size)
    await store.upgrade()
    return store


@pytest.fixture
async def stores(pg_database_url: str) -> AsyncIterator[tuple[PostgresStorage, PostgresStorage]]:
    """One storage with the default cache and one without, on the same database."""
    cached, bare = await _store(pg_database_url, DEFAULT_CONTENT_CACHE_SIZE), \
        await _store(pg_database_url, 0)
    try:
        yield cached, bare
    finally:
        await cached.close()
        await bare.close()


async def _forget_stored_bytes(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM content_chunks")
    finally:
        await conn.close()


async def test_contents_read_once_come_from_memory_afterwards(
        stores: tuple[PostgresStorage, PostgresStorage], pg_database_url: str) -> None:
    cached, bare = stores
    info = await cached.store_content(BODY)
    assert await cached.read_contents([info]) == {info.sha256: BODY}
    assert await bare.read_contents([info]) == {info.sha256: BODY}
    await _forget_stored_bytes(pg_database_url)
    assert await cached.read_contents([info]) == {info.sha256: BODY}
    assert b"".join([c async for c in cached.open_content(info.sha256, chunk_size=1000)]) \
        == BODY
    assert cached.content_cache.hits == 2
    # without the cache the same reads see the rows gone, as they always did
    assert await bare.read_contents([info]) == {}
    with pytest.raises(NotFound):
        _ = [c async for c in bare.open_content(info.sha256)]


async def test_a_read_of_several_asks_the_database_only_for_those_not_held(
        stores: tuple[PostgresStorage, PostgresStorage], pg_database_url: str) -> None:
    cached, _ = stores
    first = await cached.store_content(BODY)
    second = await cached.store_content(BODY + b"more\r\n")
    assert await cached.read_contents([first]) == {first.sha256: BODY}
    await _forget_stored_bytes(pg_database_url)
    third = await cached.store_content(BODY + b"third\r\n")
    found = await cached.read_contents([first, second, third])
    # first from memory; second is gone from the database; third is read and kept
    assert found == {first.sha256: BODY, third.sha256: BODY + b"third\r\n"}
    assert cached.content_cache.get(third.sha256) == BODY + b"third\r\n"
