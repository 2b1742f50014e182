"""Backup and restore: from each backend into a folder, checked against its manifest (a
damaged backup is refused), restored into an empty SQLite data folder or PostgreSQL
database with everything identical."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mailwing.portability.backup import BackupError, backup, restore, verify_backup
from mailwing.storage import open_storage
from tests.portability.test_dbcopy import populate, snapshot


async def make_source(url: str, data_dir: Path) -> dict[str, object]:
    store = await open_storage(url, data_dir=data_dir)
    await store.upgrade()
    await populate(store)
    state = await snapshot(store)
    await store.close()
    (data_dir / "dkim" / "example.org").mkdir(parents=True)
    (data_dir / "dkim" / "example.org" / "s1.key").write_text("KEY")
    return state


async def test_backup_and_restore_to_sqlite(database_url: str, tmp_path: Path) -> None:
    before = await make_source(database_url, tmp_path / "data")
    manifest = await backup(database_url, tmp_path / "data", tmp_path / "bk")
    assert manifest["tables"]["mail"]["rows"] == 10
    assert (tmp_path / "bk" / "files" / "dkim" / "example.org" / "s1.key").read_text() == "KEY"
    files = len(list((tmp_path / "bk" / "blobs").glob("??/*")))
    with sqlite3.connect(tmp_path / "bk" / "mailwing.db") as db:
        inline = db.execute("SELECT count(*) FROM inline_contents").fetchone()[0]
    assert (files, inline) == (1, 6)  # one content above the inline limit
    with pytest.raises(BackupError, match="not empty"):
        await backup(database_url, tmp_path / "data", tmp_path / "bk")

    new_url = f"sqlite:///{tmp_path / 'new' / 'mailwing.db'}"
    report = await restore(tmp_path / "bk", new_url, tmp_path / "new")
    assert report.contents == 7
    restored = await open_storage(new_url, data_dir=tmp_path / "new")
    assert await snapshot(restored) == before
    await restored.close()
    assert (tmp_path / "new" / "dkim" / "example.org" / "s1.key").read_text() == "KEY"
    with pytest.raises(BackupError, match="already holds data"):
        await restore(tmp_path / "bk", new_url, tmp_path / "new")


async def test_restore_sqlite_backup_into_postgres(tmp_path: Path, pg_database_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'mailwing.db'}"
    before = await make_source(url, tmp_path / "data")
    await backup(url, tmp_path / "data", tmp_path / "bk")
    await restore(tmp_path / "bk", pg_database_url, tmp_path / "pgdata")
    pg = await open_storage(pg_database_url, data_dir=tmp_path / "pgdata")
    assert await snapshot(pg) == before
    await pg.close()


async def test_damaged_backup_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'mailwing.db'}"
    await make_source(url, tmp_path / "data")
    await backup(url, tmp_path / "data", tmp_path / "bk")
    await verify_backup(tmp_path / "bk")
    conn = sqlite3.connect(tmp_path / "bk" / "mailwing.db")
    conn.execute("UPDATE mail SET flags = '' WHERE uid = 2")
    conn.commit()
    conn.close()
    with pytest.raises(BackupError, match="does not match its manifest"):
        await restore(tmp_path / "bk", f"sqlite:///{tmp_path / 'n.db'}", tmp_path / "n")
    (tmp_path / "bk" / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(BackupError, match="unknown backup format"):
        await verify_backup(tmp_path / "bk")


@pytest.mark.parametrize("form", ["file", "inline"])
async def test_corrupt_content_is_refused_on_restore(tmp_path: Path, form: str) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'mailwing.db'}"
    await make_source(url, tmp_path / "data")
    await backup(url, tmp_path / "data", tmp_path / "bk")
    if form == "file":
        blob = next((tmp_path / "bk" / "blobs").glob("??/*"))
        blob.write_bytes(b"rotten")
    else:
        with sqlite3.connect(tmp_path / "bk" / "mailwing.db") as db:
            db.execute("UPDATE inline_contents SET data = X'00' WHERE rowid = (SELECT"
                       " min(rowid) FROM inline_contents)")
    with pytest.raises(BackupError, match="corrupt"):
        await restore(tmp_path / "bk", f"sqlite:///{tmp_path / 'n.db'}", tmp_path / "n")
