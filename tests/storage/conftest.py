"""Fixtures of the storage contract suite: every test runs once per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, Storage, open_storage
from mailwing.storage.sqlite import SqliteStorage

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def fresh_storage(database_url: str, data_dir: Path) -> AsyncIterator[Storage]:
    """An opened storage on an empty database (schema version 0)."""
    storage = await open_storage(database_url, data_dir=data_dir)
    yield storage
    await storage.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    """A SQLite storage at the latest schema, for the tests of SQLite's own machinery."""
    storage = await SqliteStorage.open(tmp_path / "mail.db", tmp_path / "data")
    await storage.upgrade()
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
async def storage(fresh_storage: Storage) -> Storage:
    """An opened storage with the schema at its latest version."""
    await fresh_storage.upgrade()
    return fresh_storage


@pytest.fixture
async def user(storage: Storage) -> User:
    made, _ = await storage.add_user("alice@example.org", HASH, create_domain=True)
    return made


async def inbox_id(storage: Storage, user: User, name: str = "INBOX") -> int:
    box = await storage.get_mailbox(user.id, name)
    assert box is not None
    return box.id


async def fill(storage: Storage, mailbox_id: int, count: int, body: bytes) -> None:
    """Append ``count`` copies of ``body`` to the mailbox, one transaction each."""
    content = await storage.store_content(body)
    for _ in range(count):
        await storage.append(content, [Delivery(mailbox_id)])


async def highest_modseq(storage: Storage, mailbox_id: int) -> int:
    box = await storage.get_mailbox_by_id(mailbox_id)
    assert box is not None
    return box.highestmodseq
