"""Driver failures become TemporaryStorageError; URLs are parsed and redacted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from mailwing.storage import (
    StorageError,
    TemporaryStorageError,
    open_storage,
    redact_url,
)
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.steps import Script, q
from tests.support import free_port


async def test_sqlite_lock_held_elsewhere_is_temporary(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    storage = await SqliteStorage.open(db, tmp_path / "data", busy_timeout=0.2)
    try:
        await storage.upgrade()
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(TemporaryStorageError):
                await storage.add_domain("locked.example")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await storage.add_domain("locked.example")).name == "locked.example"
    finally:
        await storage.close()


async def test_sqlite_write_waits_for_a_lock_released_in_time(tmp_path: Path) -> None:
    """The write lock is polled in short steps (not SQLite's growing sleeps) up to the busy
    timeout: a lock released meanwhile lets the write through, and the connection keeps
    its busy timeout for other statements afterwards."""
    import threading

    db = tmp_path / "locked.db"
    storage = await SqliteStorage.open(db, tmp_path / "data", busy_timeout=30)
    try:
        await storage.upgrade()
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN EXCLUSIVE")
        threading.Timer(0.3, lambda: other.execute("ROLLBACK")).start()
        assert (await storage.add_domain("locked.example")).name == "locked.example"
        other.close()
        rows = await storage._read(_busy_timeout)
        assert rows == 30_000
    finally:
        await storage.close()


def _busy_timeout() -> Script[int]:
    rows = yield q("PRAGMA busy_timeout")
    return int(rows[0][0])


async def test_sqlite_unusable_path_is_temporary(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(TemporaryStorageError):
        storage = await open_storage(f"sqlite:///{tmp_path}/file/sub/x.db", data_dir=tmp_path)
        await storage.schema_version()


async def test_postgres_closed_port_is_temporary(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(TemporaryStorageError):
        storage = await open_storage(url, data_dir=tmp_path)
        await storage.schema_version()


async def test_closed_storage_refuses_work(tmp_path: Path) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path}/x.db", data_dir=tmp_path)
    await storage.close()
    with pytest.raises(StorageError):
        await storage.schema_version()


async def test_relative_sqlite_path_and_parent_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = await open_storage("sqlite:///deep/er/mailwing.db", data_dir=tmp_path / "d")
    try:
        await storage.upgrade()
    finally:
        await storage.close()
    assert (tmp_path / "deep" / "er" / "mailwing.db").is_file()


async def test_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        await open_storage("mysql://u:secret@h/db", data_dir=tmp_path)
    with pytest.raises(ValueError):
        await open_storage("sqlite:///", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://mail:s3cret@db.example:5433/mw", "postgresql://mail:***@db.example:5433/mw"),
        ("postgres://mail:p%40ss@db/mw?sslmode=require", "postgres://mail:***@db/mw?sslmode=require"),
        ("postgresql://mail@db/mw", "postgresql://mail@db/mw"),
        ("sqlite:///data/mailwing.db", "sqlite:///data/mailwing.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_postgres_dropped_connection_is_temporary_then_recovers(
    pg_database_url: str, tmp_path: Path
) -> None:
    storage = await open_storage(pg_database_url, data_dir=tmp_path)
    try:
        await storage.upgrade()
        admin = await asyncpg.connect(pg_database_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        outcomes: list[object] = []
        for _ in range(3):  # the pool may notice the loss before or during the first call
            try:
                outcomes.append(await storage.list_domains())
            except TemporaryStorageError as exc:
                outcomes.append(exc)
        assert outcomes[-1] == []  # the pool reconnects
        assert not any(isinstance(o, Exception) for o in outcomes[1:])
    finally:
        await storage.close()


async def test_sqlite_database_is_in_wal_mode(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "wal.db", tmp_path / "data")
    try:
        await storage.upgrade()
    finally:
        await storage.close()
    other = sqlite3.connect(tmp_path / "wal.db")
    try:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        other.close()
