"""``db copy``: SQLite to PostgreSQL and back, everything kept (ids, UIDVALIDITY, UIDs,
MODSEQs, flags, dates, expunged records, queue, content cache), verified, refusing a
non-empty target, and a catch-up pass that only sends new contents."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailwing.portability.dbcopy import CopyError, copy_database
from mailwing.storage import Delivery, Storage, open_storage
from mailwing.storage.interface import Outbound
from tests.portability.conftest import HASH, message


async def populate(store: Storage) -> None:
    alice, _ = await store.add_user("alice@example.org", HASH, create_domain=True)
    await store.add_user("bob@example.org", HASH + "b", quota_bytes=1000)
    await store.set_enabled("bob@example.org", False)
    work = await store.create_mailbox(alice.id, "Work/2024")
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None
    for n in range(6):
        # message 3 is too big for SQLite's database (a file); the others are inline there
        extra = b"x" * (70 * 1024) + b"\n" if n == 3 else b""
        content = await store.store_content(message(n, crlf=n % 2 == 0, extra=extra))
        await store.append(content, [Delivery(inbox.id, frozenset({"\\Seen", f"kw{n}"}),
                                              datetime(2024, 1, n + 1, tzinfo=UTC)),
                                     Delivery(work.id)])
    await store.set_flags(inbox.id, [2, 3], ["\\Flagged"], "add")
    await store.expunge(inbox.id, [1, 4])
    await store.claim_recent(inbox.id)
    content = await store.store_content(message(99))
    await store.enqueue(content, Outbound("Q1", "alice@example.org", ("x@remote.test",), 1e9))
    await store.set_content_cache(content.sha256, {"envelope": b"(cached)"})


async def snapshot(store: Storage) -> dict[str, Any]:
    out: dict[str, Any] = {"users": await store.list_users(), "domains": await
                           store.list_domains(), "queue": await store.list_queued()}
    for usage in out["users"]:
        user = await store.get_user(usage.address)
        assert user is not None
        out[usage.address] = user
        for box in await store.list_mailboxes(user.id):
            out[f"{usage.address}/{box.name}"] = (
                box, await store.list_mail(box.id), await store.mail_changes(box.id, 0),
                await store.mailbox_counts(box.id))
    return out


async def test_sqlite_to_postgres_and_back(tmp_path: Path, pg_database_url: str) -> None:
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    src = await open_storage(src_url, data_dir=tmp_path / "src")
    await src.upgrade()
    await populate(src)
    before = await snapshot(src)
    await src.close()

    report = await copy_database(src_url, tmp_path / "src", pg_database_url, tmp_path / "pg")
    assert report.tables["mail"][0] == 10 and report.tables["expunged"][0] == 2
    assert report.contents == 7 and report.contents_copied == 7

    pg = await open_storage(pg_database_url, data_dir=tmp_path / "pg")
    assert await snapshot(pg) == before
    cached = (await pg.list_queued())[0].content.sha256
    assert await pg.get_content_cache(cached) == {"envelope": b"(cached)"}
    # Identity sequences continue after the copied ids; UIDs after UIDNEXT.
    carol, _ = await pg.add_user("carol@example.org", HASH)
    assert carol.id == 3
    inbox = await pg.get_mailbox(before["alice@example.org"].id, "INBOX")
    assert inbox is not None
    [entry] = await pg.append(await pg.store_content(message(50)), [Delivery(inbox.id)])
    assert entry.uid == 7
    await pg.delete_user("carol@example.org")
    await pg.expunge(inbox.id, [7])
    await pg.close()

    # Back to a fresh SQLite file: identical again (the expunge above left a record).
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    await copy_database(pg_database_url, tmp_path / "pg", back_url, tmp_path / "back")
    back = await open_storage(back_url, data_dir=tmp_path / "back")
    after = await snapshot(back)
    await back.close()
    assert after["users"] == before["users"] and after["queue"] == before["queue"]
    assert after["alice@example.org/Work/2024"] == before["alice@example.org/Work/2024"]


async def test_non_empty_target_and_catch_up(tmp_path: Path, pg_database_url: str) -> None:
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    src = await open_storage(src_url, data_dir=tmp_path / "src")
    await src.upgrade()
    await populate(src)
    await src.close()
    await copy_database(src_url, tmp_path / "src", pg_database_url, tmp_path / "pg")
    with pytest.raises(CopyError, match="already holds data"):
        await copy_database(src_url, tmp_path / "src", pg_database_url, tmp_path / "pg")

    src = await open_storage(src_url, data_dir=tmp_path / "src")
    user = await src.get_user("alice@example.org")
    assert user is not None
    inbox = await src.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    await src.append(await src.store_content(message(77)), [Delivery(inbox.id)])
    await src.expunge(inbox.id, [2])  # message 1's content stays (Work holds it)
    before = await snapshot(src)
    await src.close()

    report = await copy_database(src_url, tmp_path / "src", pg_database_url, tmp_path / "pg",
                                 catch_up=True)
    assert report.contents_copied == 1 and report.contents_reused == 7
    pg = await open_storage(pg_database_url, data_dir=tmp_path / "pg")
    assert await snapshot(pg) == before
    await pg.close()


async def test_refuses_an_outdated_source(tmp_path: Path) -> None:
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    with pytest.raises(CopyError, match="db upgrade"):
        await copy_database(src_url, tmp_path / "src", f"sqlite:///{tmp_path / 't.db'}",
                            tmp_path / "t")


async def test_a_content_gone_from_the_source_stops_the_copy(tmp_path: Path) -> None:
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    src = await open_storage(src_url, data_dir=tmp_path / "src")
    await src.upgrade()
    await populate(src)
    await src.close()
    # as if expunged meanwhile: the bytes of a small content (in the database) are gone
    with sqlite3.connect(tmp_path / "src.db") as db:
        db.execute("DELETE FROM inline_contents WHERE rowid = (SELECT min(rowid)"
                   " FROM inline_contents)")
    target = f"sqlite:///{tmp_path / 't.db'}"
    with pytest.raises(CopyError, match="vanished"):
        await copy_database(src_url, tmp_path / "src", target, tmp_path / "t")
    back = await open_storage(target, data_dir=tmp_path / "t")
    assert await back.list_users() == []  # no rows were committed
    await back.close()
