"""``wait_for_change`` (what IMAP IDLE, RFC 2177, sits on): wake-ups from this process, from
another process (PostgreSQL NOTIFY, or SQLite's datagram sockets), timeouts, cancellation.

The periodic re-check is pushed far beyond the wait's timeout in the wake-up tests, so that a
True result proves the notification path; the latency is printed, not asserted."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mailwing.model import User
from mailwing.storage import Delivery, Storage, open_storage
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.sqlite.notify import notify_dir
from tests.storage.conftest import highest_modseq, inbox_id

TIMEOUT = 10.0


def _no_periodic_recheck(storage: Storage) -> None:
    storage.RECHECK_SECONDS = 600.0  # type: ignore[misc]


async def _start_waiting(storage: Storage, mailbox_id: int) -> tuple[asyncio.Task[bool], int]:
    since = await highest_modseq(storage, mailbox_id)
    task = asyncio.create_task(storage.wait_for_change(mailbox_id, since, TIMEOUT))
    for _ in range(100):  # until it is registered and past its first check
        if len(storage._waiters):  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert not task.done()
    return task, since


async def test_timeout_returns_false_and_past_changes_true(
    storage: Storage, user: User
) -> None:
    inbox = await inbox_id(storage, user)
    since = await highest_modseq(storage, inbox)
    assert await storage.wait_for_change(inbox, since, 0.2) is False
    assert await storage.wait_for_change(inbox, since, 0) is False
    assert await storage.wait_for_change(inbox, since - 1, TIMEOUT) is True
    assert await storage.wait_for_change(999_999, 0, TIMEOUT) is True  # gone: nothing to wait on


async def test_same_process_change_wakes_the_waiter(storage: Storage, user: User) -> None:
    _no_periodic_recheck(storage)
    inbox = await inbox_id(storage, user)
    task, _ = await _start_waiting(storage, inbox)
    content = await storage.store_content(b"Subject: wake\r\n\r\n")
    await storage.append(content, [Delivery(inbox)])
    changed_at = time.monotonic()
    assert await task is True
    print(f"same-process wake-up latency: {(time.monotonic() - changed_at) * 1000:.1f} ms")


async def test_flag_change_and_delete_wake_the_waiter(storage: Storage, user: User) -> None:
    _no_periodic_recheck(storage)
    box = await storage.create_mailbox(user.id, "Watched")
    content = await storage.store_content(b"Subject: flags\r\n\r\n")
    await storage.append(content, [Delivery(box.id)])
    task, _ = await _start_waiting(storage, box.id)
    await storage.set_flags(box.id, [1], ["\\Seen"], "add")
    assert await task is True
    task, _ = await _start_waiting(storage, box.id)
    await storage.delete_mailbox(user.id, "Watched")
    assert await task is True


async def test_cancelling_leaves_nothing_behind(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    task, _ = await _start_waiting(storage, inbox)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(storage._waiters) == 0  # type: ignore[attr-defined]
    await storage.append(await storage.store_content(b"x\r\n"), [Delivery(inbox)])


async def _append_when_told(url: str, data_dir: str, mailbox_id: int, go: Any) -> float:
    storage = await open_storage(url, data_dir=Path(data_dir))
    try:
        content = await storage.store_content(b"Subject: from afar\r\n\r\n")
        await asyncio.to_thread(go.wait, 60)
        await storage.append(content, [Delivery(mailbox_id)])
        return time.time()
    finally:
        await storage.close()


def append_in_process(url: str, data_dir: str, mailbox_id: int, go: Any, out: Any) -> None:
    out.put(asyncio.run(_append_when_told(url, data_dir, mailbox_id, go)))


async def _wake_from_another_process(
    storage: Storage, url: str, data_dir: Path, mailbox_id: int,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """A spawned process appends while ``storage`` waits (after ``meanwhile``, if given)."""
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=append_in_process, args=(url, str(data_dir), mailbox_id, go, out))
    child.start()
    try:
        task, _ = await _start_waiting(storage, mailbox_id)
        if meanwhile is not None:
            await meanwhile()
        go.set()
        assert await task is True  # within TIMEOUT, long before any periodic re-check
        woke_at = time.time()
        committed_at = await asyncio.to_thread(out.get, True, 60)
        print(f"cross-process wake-up latency: {(woke_at - committed_at) * 1000:.1f} ms")
    finally:
        await asyncio.to_thread(child.join, 60)
    assert child.exitcode == 0


async def test_change_by_another_process_wakes_the_waiter(
    storage: Storage, user: User, database_url: str, data_dir: Path
) -> None:
    _no_periodic_recheck(storage)
    inbox = await inbox_id(storage, user)
    await _wake_from_another_process(storage, database_url, data_dir, inbox)


async def test_pg_listener_reconnects_after_losing_its_connection(
    storage: Storage, user: User, database_url: str, data_dir: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the LISTEN connection is PostgreSQL's")
    _no_periodic_recheck(storage)
    inbox = await inbox_id(storage, user)

    async def kill_the_listen_connection() -> None:
        admin = await asyncpg.connect(database_url)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                " AND datname = current_database()"  # only this test's, not others' servers
            )
        finally:
            await admin.close()
        assert killed == 1
        await asyncio.sleep(0.5)  # the waiter is woken, re-checks and listens again

    await _wake_from_another_process(
        storage, database_url, data_dir, inbox, kill_the_listen_connection
    )


async def test_sqlite_drops_sockets_of_dead_processes(
    storage: Storage, user: User, database_url: str
) -> None:
    if not isinstance(storage, SqliteStorage):
        pytest.skip("the notify folder is SQLite's")
    inbox = await inbox_id(storage, user)
    folder = notify_dir(storage.path)
    folder.mkdir(exist_ok=True)
    stale = folder / "999999.dead"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody reads it: ECONNREFUSED
    assert stale.exists()
    await storage.append(await storage.store_content(b"x\r\n"), [Delivery(inbox)])
    assert not stale.exists()


async def test_sqlite_wakes_another_storage_in_a_deep_folder(tmp_path: Path) -> None:
    """Two storage objects on one file talk through the notify sockets (each has its own
    waiters), even where a socket path would exceed the Unix limit of ~107 bytes."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    url = f"sqlite:///{deep / 'mailwing.db'}"
    writer = await open_storage(url, data_dir=deep / "data")
    waiter = await open_storage(url, data_dir=deep / "data")
    try:
        await writer.upgrade()
        user, _ = await writer.add_user("deep@example.org", "x", create_domain=True)
        inbox = await inbox_id(writer, user)
        _no_periodic_recheck(waiter)
        task, _ = await _start_waiting(waiter, inbox)
        assert len(list(notify_dir(deep / "mailwing.db").iterdir())) == 1
        await writer.append(await writer.store_content(b"x\r\n"), [Delivery(inbox)])
        assert await task is True
    finally:
        await waiter.close()
        await writer.close()
    assert list(notify_dir(deep / "mailwing.db").iterdir()) == []  # closed: socket removed
