"""``Storage.change_mark``: what lets an IMAP session skip its catch-up query when nothing
changed. A mark may always be None ("ask"); when it is not, an equal mark must mean that no
change committed in between, whoever committed it. PostgreSQL answers from its LISTEN
connection, so the cross-node tests use a second storage object on the same database (another
node) and check the next mark right after the other's commit returned: the race between a
commit and the delivery of its notification."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from mailwing.model import User
from mailwing.storage import Delivery, Storage, open_storage
from tests.storage.conftest import HASH, inbox_id


async def _append(storage: Storage, mailbox_id: int) -> None:
    content = await storage.store_content(b"Subject: mark\r\n\r\n")
    await storage.append(content, [Delivery(mailbox_id)])


async def test_mark_is_stable_without_changes_and_moves_with_each_change(
    storage: Storage, user: User
) -> None:
    inbox = await inbox_id(storage, user)
    first = await storage.change_mark(inbox)
    if first is None:
        pytest.skip("this backend does not answer change marks (callers always query)")
    assert await storage.change_mark(inbox) == first
    await _append(storage, inbox)
    second = await storage.change_mark(inbox)
    assert second != first
    assert await storage.change_mark(inbox) == second
    await storage.set_flags(inbox, [1], ["\\Seen"], "add")
    third = await storage.change_mark(inbox)
    assert third not in (first, second)
    await storage.expunge(inbox, [1])
    fourth = await storage.change_mark(inbox)
    assert fourth not in (first, second, third)


async def test_mark_moves_when_the_mailbox_or_its_user_is_deleted(
    storage: Storage, user: User
) -> None:
    box = await storage.create_mailbox(user.id, "Doomed")
    before = await storage.change_mark(box.id)
    if before is None:
        pytest.skip("this backend does not answer change marks")
    await storage.delete_mailbox(user.id, "Doomed")
    assert await storage.change_mark(box.id) != before
    inbox = await inbox_id(storage, user)
    before = await storage.change_mark(inbox)
    await storage.delete_user(user.address)
    assert await storage.change_mark(inbox) != before


@pytest.fixture
async def two_nodes(pg_database_url: str, tmp_path: Path) -> AsyncIterator[
        tuple[Storage, Storage]]:
    a = await open_storage(pg_database_url, data_dir=tmp_path / "a")
    await a.upgrade()
    b = await open_storage(pg_database_url, data_dir=tmp_path / "b")
    yield a, b
    await a.close()
    await b.close()


async def test_a_commit_on_another_node_moves_the_next_mark(
    two_nodes: tuple[Storage, Storage]
) -> None:
    """No sleeping between the other node's commit and the mark: the sync round trip on the
    LISTEN connection must bring the notification in first, every time."""
    writer, reader = two_nodes
    user, _ = await writer.add_user("bob@example.org", HASH, create_domain=True)
    inbox = await inbox_id(writer, user)
    assert await reader.change_mark(inbox) is not None  # listening from now on
    for _ in range(100):
        before = await reader.change_mark(inbox)
        await _append(writer, inbox)
        assert await reader.change_mark(inbox) != before
    mark = await reader.change_mark(inbox)
    for _ in range(50):  # the way refresh() asks: with its previous mark
        await _append(writer, inbox)
        new = await reader.change_mark(inbox, mark)
        assert new is not None and new != mark
        mark = new
    for _ in range(3):  # quiet now: equal marks once every notification is in
        new = await reader.change_mark(inbox, mark)
        if new == mark:
            break
        mark = new
    assert new == mark


async def test_a_lost_listen_connection_never_yields_an_equal_mark(
    two_nodes: tuple[Storage, Storage]
) -> None:
    writer, reader = two_nodes
    user, _ = await writer.add_user("carol@example.org", HASH, create_domain=True)
    inbox = await inbox_id(writer, user)
    before = await reader.change_mark(inbox)
    assert before is not None
    listener = reader._listener  # type: ignore[attr-defined]
    pid = listener._conn.get_server_pid()
    admin = await asyncpg.connect(reader._pool._connect_args[0])  # type: ignore[attr-defined]
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await _append(writer, inbox)  # while nobody listens
    after = await reader.change_mark(inbox)  # None (not healthy) or a new generation
    assert after != before
    settled = await reader.change_mark(inbox)
    assert settled is None or settled == await reader.change_mark(inbox)
