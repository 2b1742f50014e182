"""Contents stream in and out in chunks: exact bytes back, bounded memory for 50 MB."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage
from mailwing.storage.sqlite import SqliteStorage
from tests.storage.conftest import HASH, inbox_id

BIG = 50 * 1024 * 1024
CHUNK = 64 * 1024


async def test_binary_content_round_trips_exactly(storage: Storage, user: User) -> None:
    data = bytes(range(256)) * 4000 + b"\r\n\r\r\n\n\x00\xff"
    info = await storage.store_content(data)
    await storage.append(info, [Delivery(await inbox_id(storage, user))])
    assert await storage.read_content(info.sha256) == data
    for size in (1000, 65536, 10**7):
        chunks = [c async for c in storage.open_content(info.sha256, chunk_size=size)]
        assert b"".join(chunks) == data
        assert all(len(c) <= size for c in chunks)


async def test_empty_content(storage: Storage, user: User) -> None:
    info = await storage.store_content(b"")
    assert (info.size, info.crlf_size, info.crlf_clean) == (0, 0, True)
    await storage.append(info, [Delivery(await inbox_id(storage, user))])
    assert await storage.read_content(info.sha256) == b""


async def test_unknown_content_is_not_found(storage: Storage) -> None:
    with pytest.raises(NotFound):
        await storage.read_content("0" * 64)
    with pytest.raises(NotFound):
        await storage.read_content("../../etc/passwd")


async def test_abort_leaves_nothing(storage: Storage) -> None:
    writer = storage.new_content()
    await writer.write(b"partial " * 300_000)
    await writer.abort()
    await writer.abort()  # idempotent
    with pytest.raises(NotFound):
        await storage.read_content(hashlib.sha256(b"partial " * 300_000).hexdigest())


@pytest.mark.slow
async def test_50_mb_streams_with_bounded_memory(storage: Storage, user: User) -> None:
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        writer = storage.new_content()
        for i in range(BIG // CHUNK):
            piece = block[i % CHUNK :] + block[: i % CHUNK]
            digest.update(piece)
            await writer.write(piece)
        info = await writer.finish()
        await storage.append(info, [Delivery(await inbox_id(storage, user))])
        check = hashlib.sha256()
        total = 0
        async for chunk in storage.open_content(info.sha256):
            check.update(chunk)
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total == BIG
    assert info.sha256 == digest.hexdigest() == check.hexdigest()
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


async def test_sqlite_garbage_collection_removes_only_old_orphans(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    storage = await SqliteStorage.open(tmp_path / "gc.db", data_dir)
    try:
        await storage.upgrade()
        await _collect_only_old_orphans(storage, data_dir)
    finally:
        await storage.close()


async def _collect_only_old_orphans(storage: SqliteStorage, data_dir: Path) -> None:
    user, _ = await storage.add_user("gc@example.org", HASH, create_domain=True)
    kept = await storage.store_content(b"linked")
    await storage.append(kept, [Delivery(await inbox_id(storage, user))])
    old = await storage.store_content(b"abandoned long ago")
    fresh = await storage.store_content(b"about to be appended")
    long_ago = time.time() - 7200
    for info in (kept, old):
        os.utime(storage.blobs.path(info.sha256), (long_ago, long_ago))
    stale_temp = data_dir / "blobs" / ".incoming-crashed"
    stale_temp.write_bytes(b"half")
    os.utime(stale_temp, (long_ago, long_ago))
    assert await storage.collect_garbage() == 2
    assert not stale_temp.exists()
    with pytest.raises(NotFound):
        await storage.read_content(old.sha256)
    assert await storage.read_content(kept.sha256) == b"linked"
    assert await storage.read_content(fresh.sha256) == b"about to be appended"
