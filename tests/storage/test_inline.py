"""Contents around the SQLite backend's inline limit (schema 9): at most INLINE_LIMIT octets
are rows of the database, larger ones are files. Every reader, dedupe, expunge, quota and
garbage collection must behave the same for both forms, and on PostgreSQL (where every
content is in the database) nothing changes. Contents written as files before schema 9 stay
readable."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage
from mailwing.storage.errors import StorageError
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.sqlite.inline import INLINE_LIMIT
from tests.storage.conftest import HASH, inbox_id
from tests.storage.test_mail import stored_copies

SIZES = [INLINE_LIMIT - 1, INLINE_LIMIT, INLINE_LIMIT + 1]


def _body(size: int, tag: bytes = b"") -> bytes:
    head = b"Subject: size " + str(size).encode() + tag + b"\r\n\r\n"
    return head + os.urandom(size - len(head))


def _form(database_url: str, data_dir: Path, sha256: str) -> str | None:
    """SQLite only: where the bytes are ("inline", "file", or None for nowhere)."""
    if not database_url.startswith("sqlite"):
        return None
    with sqlite3.connect(database_url[len("sqlite:///"):]) as db:
        if db.execute("SELECT 1 FROM inline_contents WHERE sha256 = ?", (sha256,)).fetchone():
            return "inline"
    if any(p.name == sha256 for p in (data_dir / "blobs").glob("??/*")):
        return "file"
    return "nowhere"


@pytest.mark.parametrize("size", SIZES)
async def test_contents_around_the_inline_limit(
    storage: Storage, user: User, database_url: str, data_dir: Path, size: int
) -> None:
    inbox = await inbox_id(storage, user)
    data = _body(size)
    writer = storage.new_content()
    for i in range(0, size, 10_000):  # several chunks, as SMTP writes them
        await writer.write(data[i : i + 10_000])
    info = await writer.finish()
    assert (info.sha256, info.size) == (hashlib.sha256(data).hexdigest(), size)
    assert info.fields.subject == f"size {size}"
    assert await storage.read_content(info.sha256) == data  # readable before any append
    entries = await storage.append(info, [Delivery(inbox)])
    assert await storage.read_content(info.sha256) == data
    for chunk_size in (1000, size - 1, size, 10**6):
        chunks = [c async for c in storage.open_content(info.sha256, chunk_size=chunk_size)]
        assert b"".join(chunks) == data
        assert all(0 < len(c) <= chunk_size for c in chunks)
    expected = {"sqlite": "inline" if size <= INLINE_LIMIT else "file"}
    assert _form(database_url, data_dir, info.sha256) == expected.get(
        database_url.split(":")[0])

    # dedupe: the same bytes again, delivered to a second mailbox, are stored once
    again = await storage.store_content(data)
    assert again == info
    archive = await inbox_id(storage, user, "Archive")
    await storage.append(again, [Delivery(archive)])
    assert await stored_copies(database_url, data_dir, info.sha256) == 1
    assert await storage.usage(user.id) == (2, 2 * size)
    stats = await storage.storage_stats()
    assert (stats.contents, stats.content_bytes) == (1, size)

    # the last entry gone: the bytes go with it, in either form
    assert await storage.expunge(inbox, [entries[0].uid]) == [entries[0].uid]
    assert await storage.read_content(info.sha256) == data  # still in Archive
    box = await storage.list_mail(archive)
    await storage.expunge(archive, [box[0].uid])
    assert await storage.usage(user.id) == (0, 0)
    with pytest.raises(NotFound):
        await storage.read_content(info.sha256)
    assert await stored_copies(database_url, data_dir, info.sha256) == 0
    if database_url.startswith("sqlite"):
        assert _form(database_url, data_dir, info.sha256) == "nowhere"


@pytest.mark.parametrize("size", SIZES)
async def test_queue_and_copy_read_both_forms(storage: Storage, user: User, size: int
                                              ) -> None:
    """The outbound queue and IMAP COPY link a content like an append does."""
    from mailwing.storage.interface import Outbound

    data = _body(size, b" queued")
    info = await storage.store_content(data)
    await storage.enqueue(info, Outbound("QINLINE", "a@example.org", ("b@remote.test",),
                                         time.time()))
    queued = await storage.get_queued("QINLINE")
    assert queued is not None and queued.content.sha256 == info.sha256
    assert b"".join([c async for c in storage.open_content(queued.content.sha256)]) == data
    inbox, archive = await inbox_id(storage, user), await inbox_id(storage, user, "Archive")
    await storage.append(info, [Delivery(inbox)])
    assert await storage.copy_mail(inbox, [1], archive, move=True) == [(1, 1)]
    assert await storage.read_content(info.sha256) == data
    assert await storage.delete_queued("QINLINE")
    assert await storage.read_content(info.sha256) == data  # Archive still has it


async def test_many_small_deliveries_share_commits(storage: Storage, user: User) -> None:
    """Concurrent deliveries of distinct small contents: every one is linked and readable
    (on SQLite they share transactions: the bytes go in with the linking commit)."""
    import asyncio

    inbox = await inbox_id(storage, user)
    bodies = [_body(4096, f" #{i}".encode()) for i in range(40)]

    async def deliver(body: bytes) -> None:
        info = await storage.store_content(body)
        await storage.append(info, [Delivery(inbox)])

    await asyncio.gather(*(deliver(b) for b in bodies))
    mail = await storage.list_mail(inbox)
    assert sorted(e.content.sha256 for e in mail) == sorted(
        hashlib.sha256(b).hexdigest() for b in bodies)
    for body in bodies:
        assert await storage.read_content(hashlib.sha256(body).hexdigest()) == body


# -- SQLite specifics --------------------------------------------------------------------------


@pytest.fixture
async def sqlite_storage(tmp_path: Path) -> SqliteStorage:
    store = await SqliteStorage.open(tmp_path / "i.db", tmp_path / "data")
    await store.upgrade()
    yield store  # type: ignore[misc]
    await store.close()


async def test_small_content_stored_as_a_file_before_schema_9_stays_readable(
    sqlite_storage: SqliteStorage,
) -> None:
    """Schema 9 moves nothing: a small content that is a file (written by an older mailwing)
    is linked, read, deduplicated and removed as a file."""
    store = sqlite_storage
    user, _ = await store.add_user("old@example.org", HASH, create_domain=True)
    inbox = await inbox_id(store, user)
    data = b"Subject: from before\r\n\r\nwritten as a file\r\n"
    sha = hashlib.sha256(data).hexdigest()
    store.blobs.store(data, sha)  # what FileContentWriter did for every size
    info = await store.store_content(data)  # delivered again: same digest
    await store.append(info, [Delivery(inbox)])
    assert await store.read_content(sha) == data
    assert await store.content_stored(sha)
    await store.expunge(inbox, [1])
    with pytest.raises(NotFound):
        await store.read_content(sha)
    assert not os.path.exists(store.blobs.path(sha))
    assert not await store.content_stored(sha)


async def test_old_file_only_content_links_without_inline_row(
    sqlite_storage: SqliteStorage,
) -> None:
    """An append that names a content present only as an old file (no new writer) works."""
    store = sqlite_storage
    user, _ = await store.add_user("file@example.org", HASH, create_domain=True)
    inbox = await inbox_id(store, user)
    small = await store.store_content(b"Subject: x\r\n\r\nfile only\r\n")
    assert await store.content_stored(small.sha256)  # the queued insertion has run
    with sqlite3.connect(store.path) as db:
        data = db.execute("SELECT data FROM inline_contents").fetchone()[0]
        db.execute("DELETE FROM inline_contents")
    store.blobs.store(bytes(data), small.sha256)
    await store.append(small, [Delivery(inbox)])
    assert await store.read_content(small.sha256) == b"Subject: x\r\n\r\nfile only\r\n"


async def test_an_inline_content_never_stored_is_not_linked(
    sqlite_storage: SqliteStorage,
) -> None:
    """If the queued insertion of the bytes was lost (here: removed before the append
    runs), the append fails with NotFound and nothing is linked: no entry without bytes."""
    store = sqlite_storage
    user, _ = await store.add_user("lost@example.org", HASH, create_domain=True)
    inbox = await inbox_id(store, user)
    info = await store.store_content(b"Subject: lost\r\n\r\nbytes\r\n")
    assert await store.content_stored(info.sha256)
    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM inline_contents")
    with pytest.raises(NotFound):
        await store.append(info, [Delivery(inbox)])
    assert await store.list_mail(inbox) == []


async def test_writer_on_a_closed_storage_fails(tmp_path: Path) -> None:
    store = await SqliteStorage.open(tmp_path / "c.db", tmp_path / "data")
    await store.upgrade()
    writer = store.new_content()
    await writer.write(b"late")
    await store.close()
    with pytest.raises(StorageError):
        await writer.finish()


def test_json_array_for_json_each() -> None:
    """Lists of ids are written without the json module (a delivery passes one); anything
    else goes through it. SQLite reads both the same way."""
    import json

    from mailwing.storage.sqlite.inline import json_array

    conn = sqlite3.connect(":memory:")
    for values in ([], [1], [3, 1, 2], (7, 2**40), ["ab", 'q"\\'], [True, 1], [1.5]):
        text = json_array(values)
        assert json.loads(text) == list(values)
        got = [r[0] for r in conn.execute("SELECT value FROM json_each(?)", (text,))]
        assert got == [int(v) if isinstance(v, bool) else v for v in values]
    assert json_array([1, 2]) == "[1,2]"
