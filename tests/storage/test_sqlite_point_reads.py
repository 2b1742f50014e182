"""SQLite: RCPT's recipient lookup and the quota check's usage read are answered on the
calling (event loop) thread, without a hop to the database thread (issue #9: per-message
latency), and fall back to that thread whenever they cannot be answered at once."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailwing.storage import Delivery
from mailwing.storage.errors import StorageError
from mailwing.storage.sqlite import SqliteStorage
from tests.storage.conftest import HASH


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    s = await SqliteStorage.open(tmp_path / "p.db", tmp_path / "data")
    await s.upgrade()
    yield s
    await s.close()


async def test_point_reads_make_no_thread_hop(store: SqliteStorage) -> None:
    user, _ = await store.add_user("alice@example.org", HASH, create_domain=True)
    box = await store.get_mailbox(user.id, "INBOX")
    assert box is not None
    info = await store.store_content(b"Subject: x\r\n\r\nbody\r\n")
    await store.append(info, [Delivery(box.id)])
    before = store.commit_stats
    found = await store.lookup_recipient("Alice@Example.org")
    used = await store.usage(user.id)
    assert store.commit_stats == before  # the database thread ran nothing
    assert found is not None and found.inbox_id == box.id
    assert found.used_bytes == used[1] == info.size and used[0] == 1
    # the same answers as the database thread gives
    assert found == await store._read(_scripts().lookup_recipient, "alice@example.org")
    no_user = await store.lookup_recipient("nobody@example.org")
    assert no_user is not None and no_user.user_id is None  # our domain, no such user
    assert await store.lookup_recipient("x@elsewhere.example") is None
    # a write committed by the database thread is seen by the next read here at once
    await store.append(info, [Delivery(box.id)])
    assert await store.usage(user.id) == (2, 2 * info.size)


def _scripts() -> Any:
    from mailwing.storage import scripts

    return scripts


async def test_a_read_that_cannot_start_at_once_goes_to_the_database_thread(
        store: SqliteStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    user, _ = await store.add_user("bob@example.org", HASH, create_domain=True)

    def busy(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    store._here.close()
    monkeypatch.setattr(store._here, "_connect", busy)
    before = store.commit_stats
    found = await store.lookup_recipient("bob@example.org")
    assert found is not None and found.user_id == user.id
    assert store.commit_stats[1] == before[1] + 1  # answered by the database thread


async def test_only_one_statement_scripts_are_point_reads(store: SqliteStorage) -> None:
    def two() -> Any:
        yield _scripts().q("SELECT 1")
        yield _scripts().q("SELECT 2")

    with pytest.raises(TypeError):
        store._here.read(two())


async def test_another_thread_uses_the_database_thread(store: SqliteStorage) -> None:
    await store.lookup_recipient("carol@example.org")  # binds the read connection here
    served = store._here.served
    result: list[object] = []
    script = _scripts().lookup_recipient("carol@example.org")
    t = threading.Thread(target=lambda: result.append(store._here.read(script)))
    t.start()
    t.join()
    assert result == [(False, None)] and store._here.served == served


async def test_closed_storage_refuses_point_reads(tmp_path: Path) -> None:
    s = await SqliteStorage.open(tmp_path / "c.db", tmp_path / "data")
    await s.upgrade()
    await s.close()
    with pytest.raises(StorageError):
        await s.lookup_recipient("a@example.org")
