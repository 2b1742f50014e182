"""Appending and expunging: UIDs, MODSEQs, all-or-nothing, content dedupe and cleanup."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage
from tests.storage.conftest import HASH, inbox_id

MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\n"


async def stored_copies(database_url: str, data_dir: Path, sha256: str) -> int:
    """How many times the bytes of ``sha256`` are physically stored (backend-specific)."""
    if database_url.startswith("sqlite"):  # a row of inline_contents (small) or a file
        files = sum(1 for p in (data_dir / "blobs").glob("??/*") if p.name == sha256)
        with contextlib.closing(sqlite3.connect(database_url[len("sqlite:///"):])) as db:
            rows = db.execute("SELECT count(*) FROM inline_contents WHERE sha256 = ?",
                              (sha256,)).fetchone()[0]
        return files + int(rows)
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM content_chunks WHERE sha256 = $1 AND seq = 0", sha256
        ))
    finally:
        await conn.close()


async def test_append_assigns_increasing_uids_and_modseqs(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    content = await storage.store_content(MESSAGE)
    modseqs = []
    for expected_uid in (1, 2, 3):
        [entry] = await storage.append(content, [Delivery(inbox)])
        assert entry.uid == expected_uid and entry.mailbox_id == inbox
        modseqs.append(entry.modseq)
    assert modseqs == sorted(set(modseqs))
    box = await storage.get_mailbox(user.id, "INBOX")
    assert box is not None
    assert (box.uidnext, box.highestmodseq) == (4, modseqs[-1])
    assert [e.uid for e in await storage.list_mail(inbox)] == [1, 2, 3]


async def test_append_to_several_mailboxes_keeps_order_and_fields(
    storage: Storage, user: User
) -> None:
    inbox, sent = await inbox_id(storage, user), await inbox_id(storage, user, "Sent")
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    content = await storage.store_content(MESSAGE)
    entries = await storage.append(content, [
        Delivery(sent, frozenset({"\\Seen", "$Forwarded"}), when),
        Delivery(inbox),
        Delivery(sent),
    ])
    assert [(e.mailbox_id, e.uid) for e in entries] == [(sent, 1), (inbox, 1), (sent, 2)]
    listed = await storage.list_mail(sent)
    assert listed == [entries[0], entries[2]]
    assert listed[0].flags == frozenset({"\\Seen", "$Forwarded"})
    assert listed[0].internal_date == when
    assert listed[1].flags == frozenset()
    assert listed[0].content == content
    assert await storage.list_mail(inbox) == [entries[1]]


async def test_append_is_all_or_nothing(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    content = await storage.store_content(MESSAGE)
    with pytest.raises(NotFound):
        await storage.append(content, [Delivery(inbox), Delivery(999_999)])
    assert await storage.list_mail(inbox) == []
    box = await storage.get_mailbox(user.id, "INBOX")
    assert box is not None and box.uidnext == 1 and box.highestmodseq == 1
    [entry] = await storage.append(content, [Delivery(inbox)])
    assert entry.uid == 1


async def test_same_bytes_are_stored_once(
    storage: Storage, user: User, database_url: str, data_dir: Path
) -> None:
    inbox = await inbox_id(storage, user)
    first = await storage.store_content(MESSAGE)
    second = await storage.store_content(MESSAGE)
    assert first == second
    a = await storage.append(first, [Delivery(inbox)])
    b = await storage.append(second, [Delivery(inbox)])
    assert await stored_copies(database_url, data_dir, first.sha256) == 1
    assert a[0].content.sha256 == b[0].content.sha256
    await storage.expunge(inbox, [1])
    assert await storage.read_content(first.sha256) == MESSAGE  # still used by UID 2
    await storage.expunge(inbox, [2])
    with pytest.raises(NotFound):
        await storage.read_content(first.sha256)
    assert await stored_copies(database_url, data_dir, first.sha256) == 0


async def test_expunge_and_uids_never_reused(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    content = await storage.store_content(MESSAGE)
    for _ in range(3):
        await storage.append(content, [Delivery(inbox)])
    before = await storage.get_mailbox(user.id, "INBOX")
    assert await storage.expunge(inbox, [3, 1, 42]) == [1, 3]
    after = await storage.get_mailbox(user.id, "INBOX")
    assert before is not None and after is not None
    assert after.highestmodseq == before.highestmodseq + 1
    assert await storage.expunge(inbox, [1, 3]) == []
    assert await storage.expunge(inbox, []) == []
    [entry] = await storage.append(await storage.store_content(MESSAGE), [Delivery(inbox)])
    assert entry.uid == 4
    assert entry.modseq > after.highestmodseq
    assert [e.uid for e in await storage.list_mail(inbox)] == [2, 4]


async def test_append_of_removed_content_is_refused(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    content = await storage.store_content(b"short lived")
    await storage.append(content, [Delivery(inbox)])
    await storage.expunge(inbox, [1])
    with pytest.raises(NotFound):
        await storage.append(content, [Delivery(inbox)])
    again = await storage.store_content(b"short lived")
    [entry] = await storage.append(again, [Delivery(inbox)])
    assert await storage.read_content(entry.content.sha256) == b"short lived"


async def test_recreated_mailbox_gets_new_uidvalidity(storage: Storage) -> None:
    seen = set()
    for _ in range(3):
        user, _ = await storage.add_user("again@example.org", HASH, create_domain=True)
        for box in await storage.list_mailboxes(user.id):
            assert box.uidvalidity not in seen
            seen.add(box.uidvalidity)
        await storage.delete_user(user.address)
    assert len(seen) == 18
