"""Fixtures shared by every test level."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import MailwingServer, skip_or_fail

PG_ADMIN_URL = os.environ.get(
    "MAILWING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _pg_exec(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"mailwing_test_{uuid.uuid4().hex[:12]}"
    try:
        _pg_exec(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        skip_or_fail(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mailwing.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[MailwingServer]]:
    """Make real servers: ``server_factory(root=..., enable=(...))``; all stopped at the end."""
    started: list[MailwingServer] = []

    class _Factory(MailwingServer):
        def start(self, timeout: float = 30.0) -> MailwingServer:
            started.append(self)
            return super().start(timeout)

    yield _Factory
    for srv in started:
        srv.stop()


async def open_test_storage(url: str, data_dir: Path, *, upgrade: bool = True) -> Any:
    """A real storage backend for ``url`` (schema upgraded unless ``upgrade`` is false)."""
    from mailwing.storage import open_storage

    data_dir.mkdir(parents=True, exist_ok=True)
    store: Any = await open_storage(url, data_dir=data_dir)
    if upgrade:
        await store.upgrade()
    return store


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """An upgraded, empty storage on each backend in turn (closed afterwards)."""
    storage = await open_test_storage(database_url, tmp_path / "data")
    yield storage
    await storage.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Any]:
    """An upgraded, empty SQLite storage, for tests where the backend does not matter."""
    storage = await open_test_storage(f"sqlite:///{tmp_path / 'auth.db'}", tmp_path / "data")
    yield storage
    await storage.close()
