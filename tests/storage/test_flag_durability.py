"""The durability policy of flag changes, expunges and \\Recent claims
(``storage.fsync_flag_changes``, see :class:`mailwing.storage.steps.Volatile`).

Default (false, like Dovecot's ``fsync_mode = optimized``): those transactions commit without
waiting for the disk; everything else, a delivery above all, still waits. True: everything
waits. What is checked is how each commit is made, observed where the backend decides it:

* SQLite: the ``PRAGMA synchronous`` level a transaction runs (and so commits) under, read by
  a probe script inside the transaction, by the statements the connection sends (its trace
  callback) and by the executor's record of the connection's level;
* PostgreSQL: the ``SET LOCAL synchronous_commit TO off`` sent with a transaction's COMMIT.

Each test fails if the policy is ignored in either direction: relaxed commits where a commit
must wait, or waiting commits where the default relaxes them. The process-crash half of the
promise (a relaxed commit survives ``kill -9``) is tested against a real server in
``tests/protocol/test_smtp_durability.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mailwing.config import load_settings
from mailwing.model import ContentInfo
from mailwing.runtime import open_direct_store
from mailwing.storage import Delivery, open_storage, scripts, scripts_mail
from mailwing.storage.blobs import BlobStore
from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.sqlite.direct import DirectSqliteStorage, run_direct
from mailwing.storage.sqlite.executor import SqliteExecutor, Work
from mailwing.storage.steps import Script, Volatile, q
from tests.storage.conftest import HASH, inbox_id

MESSAGE = b"From: a@example.net\r\nSubject: flags\r\n\r\nhello\r\n"
NORMAL, FULL = 1, 2  # what PRAGMA synchronous reads


def probe(volatile: bool) -> Script[int]:
    """A write script that reports the ``synchronous`` level of its own transaction (which
    cannot change inside a transaction, so it is the level of the commit)."""
    if volatile:
        yield Volatile()
    yield q("UPDATE mailboxes SET recent_floor = recent_floor WHERE id = 0")
    rows = yield q("PRAGMA synchronous")
    return int(rows[0][0])


# -- SQLite: the executor's group commit ------------------------------------------------------


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[SqliteExecutor]:
    blobs = BlobStore(tmp_path / "data" / "blobs")
    ex = SqliteExecutor(tmp_path / "m.db", blobs)
    ex.run(scripts.upgrade(SqliteStorage.MIGRATIONS), write=True)
    yield ex
    ex.close()


def _batch(ex: SqliteExecutor, *scripts_: Script[Any], write: bool = True) -> list[Any]:
    works = [Work(s, write) for s in scripts_]
    ex.run_batch(works)
    for work in works:
        assert work.error is None, work.error
    return [work.result for work in works]


def _traced(ex: SqliteExecutor) -> list[str]:
    statements: list[str] = []
    ex._connect().set_trace_callback(statements.append)
    return statements


def _delivery(ex: SqliteExecutor) -> Script[Any]:
    """A real delivery script (durable), into a mailbox of a fresh user."""
    user, _ = ex.run(scripts.add_user("bob@example.org", HASH, 0, True), write=True)
    box = ex.run(scripts.get_mailbox(user.id, "INBOX"), write=False)
    assert box is not None
    info = _inline_content(ex, MESSAGE)
    return scripts.append(info, [Delivery(box.id)], False)


def _inline_content(ex: SqliteExecutor, data: bytes) -> ContentInfo:
    from mailwing.storage.contentinfo import ContentInfoBuilder
    from mailwing.storage.sqlite.inline import store_inline

    builder = ContentInfoBuilder()
    builder.update(data)
    info = builder.result()
    ex.run(store_inline(info.sha256, data), write=True)
    return info


def test_a_batch_of_only_volatile_work_commits_with_synchronous_normal(
        executor: SqliteExecutor) -> None:
    statements = _traced(executor)
    assert _batch(executor, probe(True), probe(True), probe(True)) == [NORMAL] * 3
    assert executor.synchronous == "NORMAL"
    begin = statements.index("BEGIN IMMEDIATE")
    assert "PRAGMA synchronous = 1" in statements[:begin]  # set before the transaction
    assert statements[-1] == "COMMIT"


def test_any_durable_work_makes_the_whole_batch_full(executor: SqliteExecutor) -> None:
    assert _batch(executor, probe(True)) == [NORMAL]
    assert _batch(executor, probe(True), probe(False), probe(True)) == [FULL] * 3
    assert _batch(executor, probe(True)) == [NORMAL]
    delivery = _delivery(executor)
    assert _batch(executor, probe(True), delivery, probe(True))[0::2] == [FULL, FULL]
    assert executor.synchronous == "FULL"


def test_a_volatile_step_after_the_first_is_ignored(executor: SqliteExecutor) -> None:
    def late() -> Script[int]:
        rows = yield q("PRAGMA synchronous")
        yield Volatile()  # too late: the transaction has begun
        return int(rows[0][0])

    assert _batch(executor, late()) == [FULL]


def test_the_level_is_set_only_when_it_changes_and_reads_leave_it(
        executor: SqliteExecutor) -> None:
    statements = _traced(executor)
    _batch(executor, probe(True))
    _batch(executor, probe(True))
    _batch(executor, scripts.list_domains(), write=False)
    _batch(executor, probe(True))
    assert [s for s in statements if "synchronous =" in s] == ["PRAGMA synchronous = 1"]
    _batch(executor, probe(False))
    _batch(executor, scripts.list_domains(), write=False)
    _batch(executor, probe(False))
    assert [s for s in statements if "synchronous =" in s] == [
        "PRAGMA synchronous = 1", "PRAGMA synchronous = 2"]
    assert executor.relaxed == 3


async def test_a_relaxed_expunge_fsyncs_the_wal_before_unlinking_content_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file may only go once the expunge that dropped it is durable: otherwise a power cut
    could bring the message back without its bytes. Contents kept in the database go with
    their rows and need no such fsync, nor any look for a file."""
    store = await open_storage(f"sqlite:///{tmp_path / 'm.db'}", data_dir=tmp_path / "data")
    assert isinstance(store, SqliteStorage)
    try:
        await store.upgrade()
        user, _ = await store.add_user("bob@example.org", HASH, create_domain=True)
        box = await inbox_id(store, user)
        big = await store.store_content(b"Subject: big\r\n\r\n" + b"x" * 100_000)
        small = await store.store_content(MESSAGE)
        entries = await store.append_many([(big, Delivery(box)), (small, Delivery(box))])
        assert store.blobs.exists(big.sha256) and not store.blobs.exists(small.sha256)
        events: list[str] = []
        real_fsync, real_remove = os.fsync, store.blobs.remove

        def fsync(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").endswith("m.db-wal"):
                events.append("fsync wal")
            real_fsync(fd)

        def remove(sha256s: Any) -> None:
            events.append("unlink " + ",".join(sorted(sha256s)))
            real_remove(sha256s)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(store.blobs, "remove", remove)
        ex = store._runner._executor
        assert await store.expunge(box, [entries[1].uid]) == [entries[1].uid]  # inline
        assert ex.synchronous == "NORMAL"
        # no fsync, and no second transaction looking for a file that an inline content
        # never had (it ran under the write lock for every expunge of a small message)
        assert events == []
        events.clear()
        assert await store.expunge(box, [entries[0].uid]) == [entries[0].uid]  # a file
        assert ex.synchronous == "NORMAL"
        assert events == ["fsync wal", f"unlink {big.sha256}"]
        assert not store.blobs.exists(big.sha256)
    finally:
        await store.close()


# -- SQLite: the policy from the configuration down to the commit -----------------------------


@pytest.mark.parametrize("setting", [None, "false", "true"])
def test_config_decides_how_flag_changes_commit(tmp_path: Path, setting: str | None) -> None:
    environ = {"MAILWING_SERVER_DATA_DIR": str(tmp_path / "data")}
    if setting is not None:
        environ["MAILWING_STORAGE_FSYNC_FLAG_CHANGES"] = setting
    settings = load_settings(environ=environ)
    strict = setting == "true"
    assert settings.storage.fsync_flag_changes is strict
    store = open_direct_store(settings)
    assert isinstance(store, DirectSqliteStorage)
    relaxed = "FULL" if strict else "NORMAL"
    try:
        run_direct(store.upgrade())
        ex = store._executor
        user, _ = run_direct(store.add_user("bob@example.org", HASH, create_domain=True))
        box = run_direct(inbox_id(store, user))
        content = run_direct(store.store_content(MESSAGE))
        uids = [e.uid for e in run_direct(store.append_many(
            [(content, Delivery(box))] * 3))]
        assert ex.synchronous == "FULL"
        run_direct(store.set_flags(box, uids, ["\\Seen", "$Label1"], "add"))
        assert ex.synchronous == relaxed
        run_direct(store.append(content, [Delivery(box)]))
        assert ex.synchronous == "FULL"  # a delivery always waits for the disk
        assert run_direct(store.claim_recent(box)) == 1
        assert ex.synchronous == relaxed
        archive = run_direct(inbox_id(store, user, "Archive"))
        run_direct(store.copy_mail(box, uids[:1], archive, move=True))
        assert ex.synchronous == "FULL"  # COPY/MOVE create messages
        assert run_direct(store.expunge(box, uids[1:2])) == uids[1:2]
        assert ex.synchronous == relaxed
        run_direct(store.create_mailbox(user.id, "Later"))
        assert ex.synchronous == "FULL"
        assert ex.relaxed == (0 if strict else 3)
        flags = {e.uid: e.flags for e in run_direct(store.list_mail(box))}
        assert flags[uids[2]] == {"\\Seen", "$Label1"}
    finally:
        run_direct(store.close())


async def test_the_threaded_storage_relaxes_flag_changes_by_default(tmp_path: Path) -> None:
    store = await open_storage(f"sqlite:///{tmp_path / 'm.db'}", data_dir=tmp_path / "data")
    assert isinstance(store, SqliteStorage)
    try:
        await store.upgrade()
        ex = store._runner._executor
        user, _ = await store.add_user("bob@example.org", HASH, create_domain=True)
        box = await inbox_id(store, user)
        content = await store.store_content(MESSAGE)
        (entry,) = await store.append(content, [Delivery(box)])
        assert ex.synchronous == "FULL"
        await store.set_flags(box, [entry.uid], ["\\Flagged"], "add")
        assert ex.synchronous == "NORMAL"
    finally:
        await store.close()


# -- PostgreSQL: synchronous_commit off with the COMMIT ---------------------------------------


_RELAX_ARG = re.compile(r"set_config\('synchronous_commit', 'off', true\) WHERE \$(\d+)::boolean")


@pytest.fixture
def pg_sql(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every simple-protocol statement asyncpg connections send (COMMITs among them), and
    each write with parameters sent outside a transaction block (a statement that
    commits by itself, as ``COMMIT <its SQL>``, with ``synchronous_commit TO off`` when it
    turns that setting off for its own transaction)."""
    sent: list[str] = []
    real_execute = asyncpg.connection.Connection.execute
    real_fetch = asyncpg.connection.Connection.fetch

    async def execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await real_execute(self, query, *args, **kwargs)

    async def fetch(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not self.is_in_transaction() and not query.startswith("SELECT "):  # not a read
            relax = _RELAX_ARG.search(query)
            off = relax is not None and args[int(relax.group(1)) - 1] is True
            sent.append(("synchronous_commit TO off " if off else "") + "COMMIT " + query)
        return await real_fetch(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", execute)
    monkeypatch.setattr(asyncpg.connection.Connection, "fetch", fetch)
    return sent


@pytest.fixture(params=[False, True], ids=["default", "fsync_flag_changes"])
async def pg_store(request: pytest.FixtureRequest, pg_database_url: str, tmp_path: Path
                   ) -> AsyncIterator[Any]:
    store = await open_storage(pg_database_url, data_dir=tmp_path / "data",
                               fsync_flag_changes=request.param)
    await store.upgrade()
    yield store
    await store.close()


def _commits(sent: list[str]) -> list[str]:
    return [s for s in sent if s.endswith("COMMIT") or s.startswith(
        ("COMMIT ", "synchronous_commit TO off COMMIT "))]


async def test_postgresql_flag_changes_commit_without_waiting_unless_configured(
        pg_store: Any, pg_sql: list[str]) -> None:
    strict = pg_store.fsync_flag_changes
    user, _ = await pg_store.add_user("bob@example.org", HASH, create_domain=True)
    box = await inbox_id(pg_store, user)
    content = await pg_store.store_content(MESSAGE)
    entries = await pg_store.append_many([(content, Delivery(box))] * 3)
    uids = [e.uid for e in entries]

    async def commit_of(coro: Any) -> str:
        pg_sql.clear()
        await coro
        (commit,) = _commits(pg_sql)
        return commit

    def relaxed(commit: str) -> bool:
        return "synchronous_commit TO off" in commit

    assert not relaxed(await commit_of(pg_store.append(content, [Delivery(box)])))
    assert relaxed(await commit_of(pg_store.set_flags(box, uids, ["\\Seen"], "add"))) != strict
    assert relaxed(await commit_of(pg_store.claim_recent(box))) != strict
    assert relaxed(await commit_of(pg_store.expunge(box, uids[:1]))) != strict
    archive = await inbox_id(pg_store, user, "Archive")
    assert not relaxed(await commit_of(pg_store.copy_mail(box, uids[1:2], archive, move=True)))
    assert not relaxed(await commit_of(pg_store.create_mailbox(user.id, "Later")))
    flags = {e.uid: e.flags for e in await pg_store.list_mail(box)}
    assert flags[uids[2]] == {"\\Seen"}


def test_scripts_declare_volatile_first_only_when_asked() -> None:
    relaxed = scripts_mail.set_flags(1, [1], ["\\Seen"], "add", None, volatile=True)
    assert isinstance(next(relaxed), Volatile)
    strict = scripts_mail.set_flags(1, [1], ["\\Seen"], "add", None)
    assert not isinstance(next(strict), Volatile)
    assert isinstance(next(scripts.expunge(1, [1], volatile=True)), Volatile)
    assert not isinstance(next(scripts.expunge(1, [1])), Volatile)


def test_a_posted_content_insertion_runs_without_a_savepoint(executor: SqliteExecutor) -> None:
    """What a delivery's batch runs on SQLite (issue #9, time under the write lock): the
    posted insertion of the bytes is one statement and needs no savepoint (SQLite undoes a
    failed statement itself); the append beside it keeps its own. A script marked single
    that asks for a second statement fails."""
    from mailwing.storage.contentinfo import ContentInfoBuilder
    from mailwing.storage.sqlite.inline import store_inline

    user, _ = executor.run(scripts.add_user("carol@example.org", HASH, 0, True), write=True)
    box = executor.run(scripts.get_mailbox(user.id, "INBOX"), write=False)
    assert box is not None
    builder = ContentInfoBuilder()
    builder.update(MESSAGE)
    info = builder.result()
    posted = Work(store_inline(info.sha256, MESSAGE), True)
    posted.single = True
    append = Work(scripts.append(info, [Delivery(box.id)], False), True)
    statements = _traced(executor)
    executor.run_batch([posted, append])
    assert posted.error is None and append.error is None
    assert [e.uid for e in append.result] == [1]
    assert sum(s.startswith("SAVEPOINT") for s in statements) == 1  # the append's only

    def two() -> Script[None]:
        yield q("SELECT 1")
        yield q("SELECT 2")

    wrong = Work(two(), True)
    wrong.single = True
    executor.run_batch([wrong, Work(_delivery(executor), True)])
    assert isinstance(wrong.error, TypeError)
