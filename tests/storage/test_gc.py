"""Garbage collection on PostgreSQL (and leases on both backends): what is old and unreferenced
goes; what is linked, queued, fresh, or about to be linked by a delivery stays."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from mailwing.model import User
from mailwing.shared.background import GarbageCollector
from mailwing.storage import Delivery, NotFound, Storage
from mailwing.storage.interface import Outbound
from tests.conftest import open_test_storage
from tests.storage.conftest import HASH, inbox_id


@pytest.fixture
async def pg(pg_database_url: str, tmp_path: Path) -> Any:
    store = await open_test_storage(pg_database_url, tmp_path / "pg")
    yield store
    await store.close()


async def age(pg: Any, seconds: float = 7200) -> None:
    """Make everything stored so far look ``seconds`` old (first storing what finished
    writers left to the storage's next call, which this bypasses)."""
    await pg._save_unsaved()
    await pg._pool.execute("UPDATE content_chunks SET created_at = created_at - $1", seconds)
    await pg._pool.execute(
        "UPDATE contents SET created_at = created_at - make_interval(secs => $1)", seconds)


async def stored(pg: Any, sha256: str) -> bool:
    return bool(await pg._pool.fetchval(
        "SELECT count(*) FROM content_chunks WHERE sha256 = $1", sha256))


async def test_collects_only_old_unreferenced(pg: Any) -> None:
    user, _ = await pg.add_user("gc@example.org", HASH, create_domain=True)
    inbox = await inbox_id(pg, user)
    linked = await pg.store_content(b"linked")
    await pg.append(linked, [Delivery(inbox)])
    queued = await pg.store_content(b"queued for elsewhere")
    await pg.enqueue(queued, Outbound("Q1", "gc@example.org", ("x@remote.test",), time.time()))
    loose = await pg.store_content(b"stored, never appended")
    expunged = await pg.store_content(b"appended then left over")
    await pg.append(expunged, [Delivery(inbox)])
    # a crash between the expunge and its orphan clean-up leaves the contents row behind
    await pg._pool.execute("DELETE FROM mail WHERE content_sha256 = $1", expunged.sha256)
    staging = pg.new_content()
    await staging.write(b"x" * (1024 * 1024 + 10))  # one full piece written under staging:
    await age(pg)
    fresh_loose = await pg.store_content(b"stored a moment ago")
    fresh_staging = pg.new_content()
    await fresh_staging.write(b"y" * (1024 * 1024 + 10))

    assert await pg.collect_garbage() == 3  # old staging key, loose pieces, unused contents
    assert not await stored(pg, loose.sha256)
    assert not await stored(pg, expunged.sha256)
    assert await pg._pool.fetchval("SELECT count(*) FROM contents WHERE sha256 = $1",
                                   expunged.sha256) == 0
    assert await pg.read_content(linked.sha256) == b"linked"
    assert await pg.read_content(queued.sha256) == b"queued for elsewhere"
    assert await pg.read_content(fresh_loose.sha256) == b"stored a moment ago"
    keys = {r[0] for r in await pg._pool.fetch(
        "SELECT DISTINCT sha256 FROM content_chunks WHERE sha256 LIKE 'staging:%'")}
    assert keys == {fresh_staging._key}
    assert await pg.collect_garbage() == 0
    await fresh_staging.abort()


async def test_never_removes_what_a_delivery_is_about_to_link(pg: Any) -> None:
    """The same bytes were stored long ago and abandoned; a new delivery of them re-uses the
    stored pieces. A collection between its store and its append must keep them."""
    user, _ = await pg.add_user("race@example.org", HASH, create_domain=True)
    inbox = await inbox_id(pg, user)
    body = b"Subject: same bytes\r\n\r\nagain\r\n"
    await pg.store_content(body)  # abandoned (never appended)
    await age(pg)
    info = await pg.store_content(body)  # the delivery in progress: dedupe onto old pieces
    assert await pg.collect_garbage() == 0
    await pg.append(info, [Delivery(inbox)])
    assert await pg.read_content(info.sha256) == body


async def test_concurrent_deliveries_and_collections(pg: Any) -> None:
    user, _ = await pg.add_user("busy@example.org", HASH, create_domain=True)
    inbox = await inbox_id(pg, user)
    bodies = [f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode() for i in range(30)]
    for body in bodies:
        await pg.store_content(body)  # abandoned copies of every body
    await age(pg)
    stop = asyncio.Event()

    async def collector() -> None:
        while not stop.is_set():
            await pg.collect_garbage()
            await asyncio.sleep(0)

    async def deliver(body: bytes) -> None:
        info = await pg.store_content(body)
        await asyncio.sleep(0.01)  # "SMTP" between storing and appending
        await pg.append(info, [Delivery(inbox)])

    task = asyncio.create_task(collector())
    try:
        await asyncio.gather(*(deliver(b) for b in bodies))
    finally:
        stop.set()
        await task
    for body in bodies:
        import hashlib
        assert await pg.read_content(hashlib.sha256(body).hexdigest()) == body


async def test_lease_is_held_by_one_owner_at_a_time(store: Storage) -> None:
    now = 1000.0
    assert await store.take_lease("gc", "node1/1", now, now + 30) == ("node1/1", now + 30)
    assert await store.take_lease("gc", "node2/1", now + 1, now + 31) == ("node1/1", now + 30)
    assert (await store.take_lease("gc", "node1/1", now + 10, now + 40))[0] == "node1/1"
    assert (await store.take_lease("gc", "node2/1", now + 41, now + 71))[0] == "node2/1"
    await store.release_lease("gc", "node2/1")
    assert (await store.take_lease("gc", "node1/1", now + 42, now + 72))[0] == "node1/1"


async def test_background_collector_runs_on_the_lease_holder(store: Storage, user: User
                                                             ) -> None:
    one = GarbageCollector(store, "node1/1", interval=60)
    two = GarbageCollector(store, "node2/1", interval=60)
    assert await one.round() == 0
    assert await two.round() is None
    assert two.holder == "node1/1"
    await one.stop()  # releases: the other takes over at its next round
    assert await two.round() == 0


@pytest.fixture
async def user(store: Storage) -> User:
    made, _ = await store.add_user("alice@example.org", HASH, create_domain=True)
    return made


async def test_read_of_a_collected_content_is_not_found(pg: Any) -> None:
    info = await pg.store_content(b"gone soon")
    await age(pg)
    assert await pg.collect_garbage() == 1
    with pytest.raises(NotFound):
        await pg.read_content(info.sha256)


def test_db_gc_command_on_both_backends(database_url: str, tmp_path: Path) -> None:
    from tests.support import MailwingServer

    srv = MailwingServer(root=tmp_path / "cli", database_url=database_url)
    srv.cli("db", "upgrade")
    srv.add_user("cli@example.org", "pw")
    srv.deliver("cli@example.org", b"Subject: kept\r\n\r\nkept\r\n")
    out = srv.cli("db", "gc", "--min-age", "0").stdout.decode()
    assert out.startswith("removed 0 unreferenced content(s)")
    bad = srv.cli("db", "gc", "--min-age", "soon", check=False)
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
    assert bad.stderr.decode().count("\n") == 1
