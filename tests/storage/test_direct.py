"""The direct SQLite storage (``mailwing deliver`` without an event loop, issue #9): the same
scripts and delivery service as the threaded storage, driven by ``run_direct``.

Each test delivers through :class:`DirectSqliteStorage` and checks the outcome through the
regular :class:`SqliteStorage` on the same files: the two must agree on rows, content files
and quota, and a direct commit must wake a waiter of another storage object (what an IMAP
IDLE session in a server process sits on). Delivery runs in a worker thread where the test
itself has an event loop, so that nothing direct can lean on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailwing.services.delivery import QuotaExceeded, deliver_local
from mailwing.storage import Delivery, open_direct_storage, open_storage
from mailwing.storage.blobs import MEMORY_LIMIT
from mailwing.storage.errors import StorageError
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.sqlite.direct import DirectSqliteStorage, run_direct
from tests.storage.conftest import HASH, highest_modseq, inbox_id

MESSAGE = b"From: a@example.net\r\nSubject: inline\r\n\r\nhello\r\n"


@pytest.fixture
async def threaded(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    store = await open_storage(f"sqlite:///{tmp_path / 'm.db'}", data_dir=tmp_path / "data")
    assert isinstance(store, SqliteStorage)
    await store.upgrade()
    yield store
    await store.close()


def _direct(tmp_path: Path) -> DirectSqliteStorage:
    store = open_direct_storage(f"sqlite:///{tmp_path / 'm.db'}", data_dir=tmp_path / "data")
    assert isinstance(store, DirectSqliteStorage)
    return store


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _deliver(tmp_path: Path, address: str, data: bytes, chunk: int = 65536) -> int:
    """Deliver with no event loop in this thread; the new entry's UID."""
    store = _direct(tmp_path)
    try:
        run_direct(store.check_schema())
        entry = run_direct(deliver_local(store, address, _chunks(data, chunk),
                                         return_path="a@example.net", hostname="mail.test"))
        return entry.uid
    finally:
        run_direct(store.close())


async def test_direct_delivery_is_seen_by_the_threaded_storage(
    threaded: SqliteStorage, tmp_path: Path
) -> None:
    user, _ = await threaded.add_user("bob@example.org", HASH, create_domain=True)
    inbox = await inbox_id(threaded, user)
    big = b"Subject: big\r\n\r\n" + b"x" * 75 + b"\r\n" * (MEMORY_LIMIT // 40)  # spills to a file
    uids = [await asyncio.to_thread(_deliver, tmp_path, "bob@example.org", data)
            for data in (MESSAGE, big)]
    entries = await threaded.list_mail(inbox)
    assert [e.uid for e in entries] == uids
    trace = b"Return-Path: <a@example.net>\r\nDelivered-To: bob@example.org\r\n"
    for entry, data in zip(entries, (MESSAGE, big), strict=True):
        assert await threaded.read_content(entry.content.sha256) == trace + data
    assert entries[0].content.fields.subject == "inline"
    assert (await threaded.usage(user.id))[1] == sum(e.content.size for e in entries)


async def test_direct_storage_reads_both_forms_of_content(
    threaded: SqliteStorage, tmp_path: Path
) -> None:
    """Contents the server stored inside the database (schema 9) and as files are both
    readable without an event loop, one by one and in a batch."""
    small = await threaded.store_content(MESSAGE)
    big_data = b"Subject: big\r\n\r\n" + b"y" * 70 * 1024 + b"\r\n"
    big = await threaded.store_content(big_data)
    user, _ = await threaded.add_user("r@example.org", HASH, create_domain=True)
    inbox = await inbox_id(threaded, user)
    for info in (small, big):
        await threaded.append(info, [Delivery(inbox)])

    def read() -> tuple[bytes, bytes, dict[str, bytes]]:
        store = _direct(tmp_path)
        try:
            return (run_direct(store.read_content(small.sha256)),
                    run_direct(store.read_content(big.sha256)),
                    run_direct(store.read_contents([small, big])))
        finally:
            run_direct(store.close())

    one, two, many = await asyncio.to_thread(read)
    assert (one, two) == (MESSAGE, big_data)
    assert many == {small.sha256: MESSAGE, big.sha256: big_data}


async def test_direct_over_quota_stores_nothing(threaded: SqliteStorage, tmp_path: Path) -> None:
    user, _ = await threaded.add_user("q@example.org", HASH, quota_bytes=1000,
                                      create_domain=True)
    data = b"Subject: big\r\n\r\n" + b"y" * (MEMORY_LIMIT * 2)
    with pytest.raises(QuotaExceeded):
        await asyncio.to_thread(_deliver, tmp_path, "q@example.org", data)
    assert await threaded.list_mail(await inbox_id(threaded, user)) == []
    assert list((tmp_path / "data" / "blobs").glob("*")) == []  # no temporary file left


async def test_direct_commit_wakes_a_waiting_storage(
    threaded: SqliteStorage, tmp_path: Path
) -> None:
    """The wake-up an IMAP IDLE session in a server process waits for. The test watches the
    waiter registry itself (not ``wait_for_change``, whose final re-check would also see the
    change without any wake-up): the event is set only by the datagram."""
    user, _ = await threaded.add_user("idle@example.org", HASH, create_domain=True)
    inbox = await inbox_id(threaded, user)
    await threaded._start_listening()
    with threaded._waiters.watch(inbox) as woken:
        await asyncio.to_thread(_deliver, tmp_path, "idle@example.org", MESSAGE)
        await asyncio.wait_for(woken.wait(), 60)  # a bound, not a measurement
    assert await highest_modseq(threaded, inbox) > 1


def test_run_direct_refuses_a_coroutine_that_suspends() -> None:
    async def needs_a_loop() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="event loop"):
        run_direct(needs_a_loop())


async def test_direct_storage_errors_are_the_storage_errors(
    threaded: SqliteStorage, tmp_path: Path
) -> None:
    """Same scripts, same executor: a failing script raises the same storage exception and
    leaves the transaction rolled back; a closed storage refuses work."""
    user, _ = await threaded.add_user("e@example.org", HASH, create_domain=True)
    store = _direct(tmp_path)
    content = run_direct(store.store_content(MESSAGE))
    with pytest.raises(StorageError):
        run_direct(store.append(content, [Delivery(mailbox_id=999_999)]))
    run_direct(store.append(content, [Delivery(mailbox_id=await inbox_id(threaded, user))]))
    run_direct(store.close())
    with pytest.raises(StorageError, match="closed"):
        run_direct(store.get_user("e@example.org"))
    assert len(await threaded.list_mail(await inbox_id(threaded, user))) == 1
