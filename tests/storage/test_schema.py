"""Migrations: version 0 on an empty database, upgrade to LATEST, idempotence, the refusal."""

from __future__ import annotations

from typing import Any

import pytest

from mailwing.storage import ContentWriter, SchemaOutdated, Storage
from mailwing.storage.migrate import load_migrations, outdated_error


async def test_backend_implements_the_protocol(fresh_storage: Storage) -> None:
    assert isinstance(fresh_storage, Storage)
    assert isinstance(fresh_storage.new_content(), ContentWriter)


async def test_fresh_database_is_version_zero_and_refused(fresh_storage: Storage) -> None:
    assert await fresh_storage.schema_version() == 0
    with pytest.raises(SchemaOutdated) as info:
        await fresh_storage.check_schema()
    message = str(info.value)
    assert "version 0" in message
    assert f"needs {fresh_storage.LATEST_SCHEMA}" in message
    assert "mailwing db upgrade" in message


async def test_upgrade_reaches_latest_and_is_idempotent(fresh_storage: Storage) -> None:
    latest = fresh_storage.LATEST_SCHEMA
    assert latest >= 1
    assert await fresh_storage.upgrade() == (0, latest)
    assert await fresh_storage.schema_version() == latest
    await fresh_storage.check_schema()
    assert await fresh_storage.upgrade() == (latest, latest)
    await fresh_storage.check_schema()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_latest_schema_comes_from_the_files(backend: str) -> None:
    migrations = load_migrations(f"mailwing.storage.{backend}")
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert "CREATE TABLE" in migrations[0].sql


def test_newer_database_says_upgrade_mailwing() -> None:
    assert "upgrade mailwing" in str(outdated_error(3, 1))


async def test_schema_8_keeps_the_subscribed_mailboxes(fresh_storage: Storage) -> None:
    """Migration 8 fills ``subscriptions`` from the old per-mailbox flag."""
    from mailwing.storage import scripts
    from mailwing.storage.common import utcnow
    from mailwing.storage.steps import q

    def sql(text: str, *args: object) -> Any:
        rows = yield q(text, *args)
        return rows

    run = fresh_storage._run  # type: ignore[attr-defined]
    await run(scripts.upgrade(fresh_storage.MIGRATIONS[:7]))  # type: ignore[attr-defined]
    [(domain,)] = await run(sql("INSERT INTO domains (name) VALUES ($1) RETURNING id", "x.test"))
    [(user,)] = await run(sql(
        "INSERT INTO users (address, domain_id, password_hash, created_at)"
        " VALUES ($1, $2, $3, $4) RETURNING id", "a@x.test", domain, "h", utcnow()))
    for n, (name, on) in enumerate([("INBOX", True), ("Old", False), ("Kept", True)], 1):
        await run(sql("INSERT INTO mailboxes (user_id, name, uidvalidity, subscribed)"
                      " VALUES ($1, $2, $3, $4)", user, name, n, on))
    assert await fresh_storage.upgrade() == (7, fresh_storage.LATEST_SCHEMA)
    assert await fresh_storage.list_subscriptions(user) == ["INBOX", "Kept"]
    boxes = {b.name: b.subscribed for b in await fresh_storage.list_mailboxes(user)}
    assert boxes == {"INBOX": True, "Old": False, "Kept": True}
