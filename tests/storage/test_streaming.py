"""Contents stream in and out in chunks: exact bytes back, bounded memory for 50 MB."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
import tracemalloc
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage
from mailwing.storage.blobs import MEMORY_LIMIT
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.sqlite.inline import INLINE_LIMIT
from tests.storage.conftest import HASH, highest_modseq, inbox_id

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


async def test_read_contents_batch_leaves_out_what_is_gone(storage: Storage, user: User
                                                          ) -> None:
    """The batched read behind FETCH 1:* BODY[] gives each stored content exactly, once per
    digest, and leaves out unknown or malformed digests instead of failing the batch."""
    datas = [b"message %d\r\n" % i * (i + 1) for i in range(5)] + [b""]
    datas.append(b"large\r\n" * 200_000)  # a file on SQLite (above the inline limit)
    infos = [await storage.store_content(d) for d in datas]
    inbox = await inbox_id(storage, user)
    for info in infos:
        await storage.append(info, [Delivery(inbox)])
    wanted = [*infos, infos[0]._replace(sha256="0" * 64),
              infos[0]._replace(sha256="../../etc/passwd"), infos[2]]
    found = await storage.read_contents(wanted)
    assert found == {i.sha256: d for i, d in zip(infos, datas, strict=True)}
    assert await storage.read_contents([]) == {}


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


#: A content too big to be kept in the database: a file (but still written in one go).
FILE_SIZE = INLINE_LIMIT + 1


async def _collect_only_old_orphans(storage: SqliteStorage, data_dir: Path) -> None:
    """Both forms: small contents (rows of inline_contents) and files."""
    user, _ = await storage.add_user("gc@example.org", HASH, create_domain=True)
    inbox = await inbox_id(storage, user)
    kept = await storage.store_content(b"linked")
    kept_file = await storage.store_content(b"L" * FILE_SIZE)
    await storage.append(kept, [Delivery(inbox)])
    await storage.append(kept_file, [Delivery(inbox)])
    old = await storage.store_content(b"abandoned long ago")
    old_file = await storage.store_content(b"A" * FILE_SIZE)
    long_ago = time.time() - 7200
    assert await storage.content_stored(old.sha256)  # its queued insertion has committed
    for info in (kept_file, old_file):
        os.utime(storage.blobs.path(info.sha256), (long_ago, long_ago))
    with sqlite3.connect(storage.path) as db:
        db.execute("UPDATE inline_contents SET created_at = ?", (long_ago,))
    fresh = await storage.store_content(b"about to be appended")
    fresh_file = await storage.store_content(b"F" * FILE_SIZE)
    again = await storage.store_content(b"abandoned long ago, then delivered again")
    assert await storage.content_stored(again.sha256)
    with sqlite3.connect(storage.path) as db:
        db.execute("UPDATE inline_contents SET created_at = ? WHERE sha256 = ?",
                   (long_ago, again.sha256))
    again = await storage.store_content(b"abandoned long ago, then delivered again")
    stale_temp = data_dir / "blobs" / ".incoming-crashed"
    stale_temp.write_bytes(b"half")
    os.utime(stale_temp, (long_ago, long_ago))
    assert await storage.collect_garbage() == 3  # old, old_file, stale_temp
    assert not stale_temp.exists()
    for gone in (old, old_file):
        with pytest.raises(NotFound):
            await storage.read_content(gone.sha256)
    assert await storage.read_content(kept.sha256) == b"linked"
    assert await storage.read_content(kept_file.sha256) == b"L" * FILE_SIZE
    assert await storage.read_content(fresh.sha256) == b"about to be appended"
    assert await storage.read_content(fresh_file.sha256) == b"F" * FILE_SIZE
    await storage.append(again, [Delivery(inbox)])  # storing again renewed its age
    assert (await storage.read_content(again.sha256)).endswith(b"delivered again")


@pytest.mark.parametrize("extra", [-1, 0, 1, 70_000])
async def test_contents_around_the_memory_limit_round_trip(
    storage: Storage, user: User, extra: int
) -> None:
    """Small contents are buffered and written at finish(), larger ones spill to a file."""
    data = os.urandom(MEMORY_LIMIT + extra)
    writer = storage.new_content()
    for i in range(0, len(data), 50_000):
        await writer.write(data[i : i + 50_000])
    info = await writer.finish()
    assert await writer.finish() == info
    assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    await storage.append(info, [Delivery(await inbox_id(storage, user))])
    assert await storage.read_content(info.sha256) == data


async def test_writer_copies_reused_buffers(storage: Storage) -> None:
    buffer = bytearray(b"Subject: one\r\n\r\nfirst ")
    writer = storage.new_content()
    await writer.write(buffer)  # type: ignore[arg-type]  # a bytearray works at run time
    buffer[:] = b"overwritten by the caller"
    await writer.write(b"second\r\n")
    info = await writer.finish()
    assert await storage.read_content(info.sha256) == b"Subject: one\r\n\r\nfirst second\r\n"
    assert info.fields.subject == "one"


async def test_sqlite_abort_and_spill_leave_no_temporary_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    storage = await SqliteStorage.open(tmp_path / "t.db", data_dir)
    try:
        await storage.upgrade()
        small = storage.new_content()
        await small.write(b"never stored")
        await small.abort()
        big = storage.new_content()
        await big.write(b"x" * (MEMORY_LIMIT + 1))
        assert list((data_dir / "blobs").glob(".incoming-*"))  # spilled to a file
        await big.abort()
        assert not list((data_dir / "blobs").glob(".incoming-*"))
        stored = await storage.store_content(b"y" * (MEMORY_LIMIT * 2))
        assert not list((data_dir / "blobs").glob(".incoming-*"))
        assert await storage.read_content(stored.sha256) == b"y" * (MEMORY_LIMIT * 2)
    finally:
        await storage.close()


async def test_sqlite_blob_directories_removed_behind_its_back_are_remade(
    tmp_path: Path,
) -> None:
    """Fan-out directories are remembered once made; a store that lost them still works."""
    data_dir = tmp_path / "data"
    storage = await SqliteStorage.open(tmp_path / "d.db", data_dir)
    try:
        await storage.upgrade()
        body = b"first content " * (INLINE_LIMIT // 10)  # a file, written in one go
        first = await storage.store_content(body)
        assert await storage.read_content(first.sha256) == body
        shutil.rmtree(data_dir / "blobs")
        again = await storage.store_content(body)  # was stored: now rewritten
        assert again == first
        assert await storage.read_content(first.sha256) == body
        shutil.rmtree(data_dir / "blobs")
        big = b"z" * (MEMORY_LIMIT + 10)
        info = await storage.store_content(big)
        assert await storage.read_content(info.sha256) == big
        path = storage.blobs.path(info.sha256)
        assert Path(path).relative_to(data_dir / "blobs").parts == (
            info.sha256[:2], info.sha256)
    finally:
        await storage.close()


async def test_failed_append_leaves_no_trace(storage: Storage, user: User) -> None:
    """A request that fails halfway is rolled back whole, even when it ran alone."""
    inbox = await inbox_id(storage, user)
    before = await highest_modseq(storage, inbox)
    info = await storage.store_content(b"Subject: lost\r\n\r\nnever linked\r\n")
    with pytest.raises(NotFound):
        await storage.append(info, [Delivery(inbox), Delivery(inbox + 10_000)])
    assert await storage.list_mail(inbox) == []
    assert await highest_modseq(storage, inbox) == before
    assert await storage.usage(user.id) == (0, 0)


async def test_postgres_content_removed_while_being_read_is_not_cut_silently(
    storage: Storage, user: User
) -> None:
    """PostgreSQL reads several pieces per query: a content whose pieces vanish between two
    batches must end in NotFound, not in a shorter body. Three batches: the second is
    fetched ahead while the first is read, and may still beat the removal; the third is
    asked for only once the second is taken, after it."""
    from mailwing.storage.postgres import PostgresStorage
    from mailwing.storage.postgres.content import PIECE_SIZE, READ_BATCH

    if not isinstance(storage, PostgresStorage):
        pytest.skip("the piece batches are PostgreSQL's")
    data = os.urandom(PIECE_SIZE * (READ_BATCH * 2 + 1) + 10)
    info = await storage.store_content(data)
    assert await storage.read_content(info.sha256) == data  # every batch, in order
    reader = storage.open_content(info.sha256, chunk_size=PIECE_SIZE)
    assert await anext(reader) == data[:PIECE_SIZE]
    await storage._pool.execute(  # what a concurrent removal does
        "DELETE FROM content_chunks WHERE sha256 = $1", info.sha256)
    with pytest.raises(NotFound):
        async for _ in reader:
            pass


async def test_read_contents_returns_each_stored_content_and_leaves_out_the_rest(
    storage: Storage, user: User
) -> None:
    bodies = [b"Subject: %d\r\n\r\n" % i + os.urandom(300 * i) for i in range(5)]
    infos = [await storage.store_content(b) for b in bodies]
    inbox = await inbox_id(storage, user)
    for info in infos:
        await storage.append(info, [Delivery(inbox)])
    missing = infos[0]._replace(sha256="0" * 64)
    found = await storage.read_contents([*infos, infos[1], missing])
    assert found == {info.sha256: body for info, body in zip(infos, bodies, strict=True)}
    assert await storage.read_contents([]) == {}


@pytest.mark.parametrize("chunk_size", [1 << 20, 3 << 19, 300_000])
async def test_open_content_chunks_never_exceed_the_size_asked_for(
    storage: Storage, user: User, chunk_size: int
) -> None:
    """POP3 RETR reads in 1 MiB chunks, which PostgreSQL hands over as the stored pieces
    themselves; a piece is still sliced when a smaller size is asked for, and either way
    the chunks add up to the content, in order."""
    data = os.urandom((5 << 19) + 123)  # two and a half pieces
    info = await storage.store_content(data)
    chunks = [c async for c in storage.open_content(info.sha256, chunk_size=chunk_size)]
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= chunk_size for c in chunks)
    assert len(chunks) >= -(-len(data) // chunk_size)
