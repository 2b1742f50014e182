"""Round trips per operation on PostgreSQL (issue #9: PostgreSQL >= 0.8x SQLite).

Why counted: PostgreSQL shares the machine's cores with the workers, so every statement sent
costs a wake-up of a backend and of the worker, besides its latency. These tests pin the
counts of the hot paths so that a change that adds one is seen: a STORE, a ``\\Recent``
claim (after its read) and a delivery of a fresh small content (an SMTP message) are each
one statement that commits by itself (no ``BEGIN``/``COMMIT``), an IMAP APPEND too (its
quota checked inside the statement), a STORE still one when another writer committed while it
waited for the mailbox's lock, an EXPUNGE two (the second sent with the COMMIT), a catch-up that
brings new mail one when the mail is claimed already, deliveries under way at once in one
process share one statement (group commit: one WAL flush, each lock taken once), and the
shared-limits pool sends no reset query after each use. A LOGIN's two queries (failure
counts, user row) are sent together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mailwing.config import AuthSettings
from mailwing.model import User
from mailwing.services.auth import Authenticator
from mailwing.services.passwords import hash_password
from mailwing.shared import pg_store
from mailwing.shared.limits import SharedThrottle
from mailwing.storage import Delivery, open_storage
from mailwing.storage.errors import NotFound, OverQuota
from mailwing.storage.interface import RecipientLookup
from mailwing.storage.notify import READ_AT
from mailwing.storage.postgres.backend import PostgresStorage

from .conftest import HASH, inbox_id

MESSAGE = b"Subject: hello\r\n\r\nbody\r\n"
_METHODS = ("execute", "fetch", "fetchval", "fetchrow", "executemany")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(statement, sent inside a transaction block) for every statement asyncpg sends."""
    log: list[tuple[str, bool]] = []
    for name in _METHODS:
        real = getattr(asyncpg.connection.Connection, name)

        def wrap(real: Any) -> Any:
            async def call(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
                log.append((" ".join(query.split()), self.is_in_transaction()))
                return await real(self, query, *args, **kwargs)
            return call

        monkeypatch.setattr(asyncpg.connection.Connection, name, wrap(real))
    return log


@pytest.fixture
async def pg(pg_database_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    store = await open_storage(pg_database_url, data_dir=tmp_path / "data")
    await store.upgrade()
    yield store
    await store.close()


@pytest.fixture
async def alice(pg: Any) -> User:
    made, _ = await pg.add_user("alice@example.org", HASH, create_domain=True)
    return made


async def statements(log: list[tuple[str, bool]], call: Any) -> list[tuple[str, bool]]:
    log.clear()
    await call
    return list(log)


async def test_store_and_recent_claim_are_one_statement_each(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    await pg.append(content, [Delivery(box)])
    sent.clear()  # something to claim: the read, then the claim, each outside a transaction
    assert await pg.claim_recent(box) == 1
    assert [in_transaction for _, in_transaction in sent] == [False, False]
    sent.clear()  # nothing to claim: the read alone
    assert await pg.claim_recent(box) == 2
    assert len(sent) == 1 and not sent[0][1]
    stored = await statements(sent, pg.set_flags(box, [1], ["\\Seen"], "add"))
    assert len(stored) == 1 and not stored[0][1]
    assert {e.uid: e.flags for e in await pg.list_mail(box)} == {1: {"\\Seen"}}


async def test_expunge_is_two_statements_in_a_transaction(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    await pg.append(content, [Delivery(box)])
    await pg.append(content, [Delivery(box)])
    sent.clear()
    assert await pg.expunge(box, [3]) == []  # no such UID: the first statement finds none
    assert len(sent) == 3
    sent.clear()  # the orphans' removal goes with the COMMIT
    assert await pg.expunge(box, [1, 3]) == [1]
    assert len(sent) == 3 and sent[0][0].startswith("BEGIN") and sent[2][0].endswith("COMMIT")
    assert sent[2][0].startswith("WITH gone AS ( DELETE FROM contents")
    assert await pg.expunge(box, [2]) == [2]  # the content's last entry: bytes dropped
    assert await pg._pool.fetchval("SELECT count(*) FROM content_chunks") == 0
    assert await pg.usage(alice.id) == (0, 0)


async def test_recent_claim_answers_as_before(pg: Any, alice: User) -> None:
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    await pg.append(content, [Delivery(box)])
    assert await pg.claim_recent(box) == 1  # UID 1 is this session's
    assert await pg.claim_recent(box) == 2  # nothing new since
    await pg.append(content, [Delivery(box)])
    results = await asyncio.gather(*(pg.claim_recent(box) for _ in range(8)))
    assert sorted(results) == [2] + [3] * 7  # exactly one session gets UID 2
    with pytest.raises(NotFound):
        await pg.claim_recent(987_654)


async def test_delivery_stores_its_small_content_in_its_own_statement(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    box = await inbox_id(pg, alice)
    sent.clear()
    writer = pg.new_content()
    await writer.write(MESSAGE)
    info = await writer.finish()
    [entry] = await pg.append(info, [Delivery(box)])
    assert len(sent) == 1 and not sent[0][1]  # content, contents row, mail row: one commit
    assert "INSERT INTO content_chunks" in sent[0][0]
    assert await pg.read_content(entry.content.sha256) == MESSAGE
    assert await pg.usage(alice.id) == (1, len(MESSAGE))


async def test_imap_append_is_one_statement_that_commits_alone(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """An APPEND checks the quota inside its statement: no BEGIN/COMMIT around it (three
    round trips with the mailbox row locked across them before)."""
    box = await inbox_id(pg, alice)
    sent.clear()
    info = await pg.store_content(MESSAGE)
    await pg.append_many([(info, Delivery(box, frozenset({"\\Seen"})))], enforce_quota=True)
    assert len(sent) == 1 and not sent[0][1], sent
    assert "INSERT INTO content_chunks" in sent[0][0] and "pg_notify" in sent[0][0]
    assert [e.flags for e in await pg.list_mail(box)] == [{"\\Seen"}]


async def test_an_append_over_quota_links_nothing_in_its_one_statement(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    box = await inbox_id(pg, alice)
    await pg.set_quota(alice.address, len(MESSAGE) + 10)
    await pg.append(await pg.store_content(MESSAGE), [Delivery(box)], enforce_quota=True)
    big = await _unsaved(pg, MESSAGE + b"more\r\n")
    sent.clear()
    with pytest.raises(OverQuota):
        await pg.append(big, [Delivery(box)], enforce_quota=True)
    assert len(sent) == 1 and not sent[0][1], sent
    assert [e.uid for e in await pg.list_mail(box)] == [1]
    assert await pg.usage(alice.id) == (1, len(MESSAGE))
    high = await pg.get_mailbox_by_id(box)
    assert high is not None and (high.uidnext, high.highestmodseq) == (2, 2)
    # an unlimited user's enforced append goes through the same statement
    await pg.set_quota(alice.address, 0)
    [entry] = await pg.append(big, [Delivery(box)], enforce_quota=True)
    assert entry.uid == 2 and await pg.read_content(big.sha256) == MESSAGE + b"more\r\n"


async def test_unsaved_content_is_stored_before_anything_else_reads_it(
        pg: Any, alice: User) -> None:
    writer = pg.new_content()
    await writer.write(MESSAGE)
    info = await writer.finish()
    assert await pg.read_content(info.sha256) == MESSAGE  # stored first, then read
    box = await inbox_id(pg, alice)
    [entry] = await pg.append(info, [Delivery(box)])  # the bytes are not stored twice
    assert entry.uid == 1
    count = await pg._pool.fetchval(
        "SELECT count(*) FROM content_chunks WHERE sha256 = $1", info.sha256)
    assert count == 1


async def test_a_delivery_to_a_missing_mailbox_stores_no_entry(pg: Any, alice: User) -> None:
    box = await inbox_id(pg, alice)
    writer = pg.new_content()
    await writer.write(MESSAGE)
    info = await writer.finish()
    with pytest.raises(NotFound, match="987654"):
        await pg.append(info, [Delivery(box), Delivery(987_654)])
    assert await pg.list_mail(box) == []
    assert await pg.usage(alice.id) == (0, 0)
    high = await pg.get_mailbox_by_id(box)
    assert high is not None and high.uidnext == 1


async def test_a_relaxed_statement_does_not_relax_the_connection(pg: Any, alice: User) -> None:
    """``set_config(..., true)`` in a statement sent alone lasts for its own transaction."""
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    await pg.append(content, [Delivery(box)])
    await pg.set_flags(box, [1], ["\\Seen"], "add")  # volatile by default
    conns = [await pg._pool.acquire() for _ in range(pg._pool.get_size())]
    try:
        for conn in conns:
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        for conn in conns:
            await pg._pool.release(conn)


async def test_shared_limits_pool_sends_no_reset(
        pg_database_url: str, pg: Any, sent: list[tuple[str, bool]]) -> None:
    pool = await pg_store.open_pool(pg_database_url)
    try:
        failures = pg_store.PgFailures(pool, 60.0, owns_pool=False)
        sent.clear()
        assert await failures.counts(["ip:192.0.2.1"], 1000.0) == [0]
        await failures.clear("user:alice@example.org")
        assert len(sent) == 2, sent  # a query each, no reset after either
    finally:
        await pool.close()


async def test_a_login_after_a_clean_check_sends_no_delete(
        pg_database_url: str, pg: Any, sent: list[tuple[str, bool]]) -> None:
    """A success right after a check that counted no failure for the user has nothing to
    clear; one after failures (here, or counted by another node) clears them."""
    pools = [await pg_store.open_pool(pg_database_url) for _ in range(2)]
    try:
        here, there = (pg_store.PgFailures(p, 60.0, owns_pool=False) for p in pools)
        keys = ["ip:192.0.2.1", "user:alice@example.org"]
        sent.clear()
        assert await here.counts(keys, 1000.0) == [0, 0]
        await here.clear(keys[1])
        assert len(sent) == 1  # the check only
        assert await here.add(keys, 1000.0) == [1, 1]
        await here.clear(keys[1])
        assert await here.counts(keys, 1001.0) == [1, 0]
        await there.add(keys[1:], 1001.0)  # another node's failure...
        assert await here.counts(keys, 1002.0) == [1, 1]
        await here.clear(keys[1])  # ...counted here, so cleared on success
        assert await there.counts(keys, 1002.0) == [1, 0]
    finally:
        for pool in pools:
            await pool.close()


async def test_unsaved_content_is_stored_by_close(pg_database_url: str, tmp_path: Path) -> None:
    """A finished writer's bytes survive the storage object even when nothing used them."""
    store = await open_storage(pg_database_url, data_dir=tmp_path / "data")
    await store.upgrade()
    writer = store.new_content()
    await writer.write(MESSAGE)
    info = await writer.finish()
    await store.close()
    conn = await asyncpg.connect(pg_database_url)
    try:
        assert await conn.fetchval(
            "SELECT data FROM content_chunks WHERE sha256 = $1", info.sha256) == MESSAGE
    finally:
        await conn.close()


async def test_store_and_its_catch_up_are_one_statement_outside_a_transaction(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """The IMAP STORE's catch-up (``set_flags_with_changes``) is read by the one-statement
    STORE (it was a second statement; in one transaction they would add BEGIN and COMMIT)."""
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    await pg.append(content, [Delivery(box)])
    highest = (await pg.mail_changes(box, 0))[0]
    sent.clear()
    (changed, _), (modseq, entries, gone), floor = await pg.set_flags_with_changes(
        box, [1], ["\\Seen"], "add", since_modseq=highest)
    assert [in_transaction for _, in_transaction in sent] == [False]
    assert [e.uid for e in changed] == [1] and modseq > highest and gone == []
    assert [(e.uid, e.flags) for e in entries] == [(1, {"\\Seen"})] and floor is None


async def test_open_mailbox_is_one_statement_when_nothing_is_to_claim(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """A SELECT of a mailbox whose listing the process kept: the claim's read, the mailbox
    row and the catch-up were three statements; with nothing new to claim, one. With new
    mail the claim comes first, then the reads: as many statements as before."""
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    await pg.append(content, [Delivery(box)])
    assert await pg.claim_recent(box) == 1
    await pg.set_flags(box, [1], ["\\Seen"], "add")
    sent.clear()
    found, changes, floor = await pg.open_mailbox(box, 0, claim=True)
    assert len(sent) == 1 and not sent[0][1]
    assert found == await pg.get_mailbox_by_id(box) and floor == 2
    assert changes == await pg.mail_changes(box, 0)
    await pg.append(content, [Delivery(box)])  # UID 2: new, to be claimed
    highest = changes[0]
    sent.clear()
    found, changes, floor = await pg.open_mailbox(box, highest, claim=True)
    assert len(sent) == 4  # the read finding UID 2, the claim, then the two reads again
    assert floor == 2 and found is not None and found.uidnext == 3
    assert [e.uid for e in changes[1]] == [2]
    assert await pg.claim_recent(box) == 3  # claimed by the call above
    sent.clear()
    found, changes, floor = await pg.open_mailbox(box, highest, claim=False)
    assert len(sent) == 1 and floor is None and [e.uid for e in changes[1]] == [2]


async def test_select_takes_its_mark_without_a_sync_and_refresh_with_one(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """SELECT reads everything after its change mark, so the mark needs no sync round trip
    on the LISTEN connection; the catch-up before the next command still syncs, and skips
    its query when nothing changed."""
    from mailwing.services.imap_selected import open_view, refresh

    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    await pg.append(content, [Delivery(box)])
    mailbox = await pg.get_mailbox_by_id(box)
    await open_view(pg, mailbox, read_only=False)  # lists the mailbox, keeps the listing
    sent.clear()
    view = await open_view(pg, mailbox, read_only=False)
    assert [s for s, _ in sent if s == "SELECT 1"] == [] and len(sent) == 1
    assert view.uids == [1] and view.change_mark is not None
    sent.clear()
    await refresh(pg, view)
    assert [s for s, _ in sent] == ["SELECT 1"]  # the sync, no catch-up query


async def _unsaved(pg: Any, body: bytes) -> Any:
    """A finished writer's content whose bytes wait for the delivery (as SMTP leaves it)."""
    writer = pg.new_content()
    await writer.write(body)
    return await writer.finish()


async def test_concurrent_deliveries_commit_together(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """Deliveries under way at once in one process (SMTP sessions) share one statement,
    so one commit and one WAL flush (here all eight: they are all queued before the queue's
    task runs). UIDs follow the callers' order per mailbox, usage counts all."""
    bob, _ = await pg.add_user("bob@example.org", HASH, create_domain=True)
    boxes = [await inbox_id(pg, alice), await inbox_id(pg, bob)]
    infos = [await _unsaved(pg, MESSAGE + b"%d\r\n" % i) for i in range(8)]
    sent.clear()
    results = await asyncio.gather(*(
        pg.append(info, [Delivery(boxes[i % 2])]) for i, info in enumerate(infos)))
    assert len(sent) == 1 and not sent[0][1], sent  # eight statements one by one
    assert pg._deliveries.batches == 1
    assert [[e.uid for e in r] for r in results] == [[1], [1], [2], [2], [3], [3], [4], [4]]
    for box in boxes:
        entries = await pg.list_mail(box)
        assert [e.uid for e in entries] == [1, 2, 3, 4]
        assert len({e.id for e in entries}) == 4
    assert len({e.modseq for r in results for e in r if e.mailbox_id == boxes[0]}) == 1
    for info, [entry] in zip(infos, results, strict=True):
        assert entry.content.sha256 == info.sha256
        assert await pg.read_content(info.sha256) == await pg.read_content(entry.content.sha256)
    size = len(MESSAGE) + 3
    assert await pg.usage(alice.id) == (4, 4 * size)
    assert await pg.usage(bob.id) == (4, 4 * size)
    box = await pg.get_mailbox_by_id(boxes[0])
    assert box is not None and box.uidnext == 5


async def test_a_batch_with_a_missing_mailbox_delivers_the_others(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """A delivery that cannot be made fails alone: the batch is retried one by one."""
    box = await inbox_id(pg, alice)
    infos = [await _unsaved(pg, MESSAGE + b"%d\r\n" % i) for i in range(4)]
    targets = [box, box, 987_654, box]
    results = await asyncio.gather(
        *(pg.append(info, [Delivery(t)]) for info, t in zip(infos, targets, strict=True)),
        return_exceptions=True)
    assert isinstance(results[2], NotFound)
    assert sorted(r[0].uid for i, r in enumerate(results) if i != 2) == [1, 2, 3]
    assert await pg.usage(alice.id) == (3, 3 * (len(MESSAGE) + 3))
    for i in (0, 1, 3):
        assert await pg.read_content(infos[i].sha256) == MESSAGE + b"%d\r\n" % i


async def test_a_batch_may_deliver_one_content_twice_and_keep_flags(
        pg: Any, alice: User) -> None:
    """Two deliveries of the same content in one batch (one stored, one unsaved), one
    with flags: one content row, two entries, each with its own flags."""
    box = await inbox_id(pg, alice)
    stored = await pg.store_content(MESSAGE)
    fresh = await _unsaved(pg, MESSAGE + b"x\r\n")
    results = await asyncio.gather(
        pg.append(stored, [Delivery(box)]),
        pg.append(stored, [Delivery(box, frozenset({"\\Seen", "$Junk"}))]),
        pg.append(fresh, [Delivery(box)]), pg.append(fresh, [Delivery(box)]))
    assert pg._deliveries.batches == 1
    assert [r[0].uid for r in results] == [1, 2, 3, 4]
    by_uid = {e.uid: e for e in await pg.list_mail(box)}
    assert by_uid[2].flags == {"\\Seen", "$Junk"} and by_uid[3].flags == frozenset()
    assert by_uid[3].content.sha256 == by_uid[4].content.sha256 == fresh.sha256
    assert await pg.read_content(fresh.sha256) == MESSAGE + b"x\r\n"
    assert await pg._pool.fetchval("SELECT count(*) FROM content_chunks") == 2
    assert await pg.usage(alice.id) == (4, 2 * len(MESSAGE) + 2 * (len(MESSAGE) + 3))


async def test_concurrent_recipient_lookups_share_one_statement(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """RCPT lookups under way at once (SMTP sessions) are one statement, with the answers
    of the lookup one by one: a user, an unknown user of a local domain, a foreign domain."""
    await pg.set_quota(alice.address, 5000)
    box = await inbox_id(pg, alice)
    alone = await pg.lookup_recipient("Alice@Example.org")
    sent.clear()
    answers = await asyncio.gather(
        pg.lookup_recipient("alice@example.org"), pg.lookup_recipient("nobody@example.org"),
        pg.lookup_recipient("someone@elsewhere.test"), pg.lookup_recipient("ALICE@example.org."))
    assert len(sent) == 1 and not sent[0][1], sent  # four statements one by one
    assert pg._recipients.batches == 1
    assert alone is not None and (alone.user_id, alone.inbox_id) == (alice.id, box)
    assert alone.quota_bytes == 5000
    assert answers[0] == alone and answers[1] == RecipientLookup() and answers[2] is None
    assert answers[3] == await pg.lookup_recipient("ALICE@example.org.")


async def test_a_login_is_two_statements_under_way_at_once(
        pg_database_url: str, pg: Any, alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """A LOGIN on PostgreSQL without Redis: the failure counts (on the shared-limits pool)
    and the user row, sent together, so one round trip of waiting rather than two; a
    success after a clean check sends no DELETE."""
    log: list[str] = []
    busy = [0, 0]  # statements under way now, most at once

    def wrap(real: Any) -> Any:
        async def call(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            log.append(" ".join(query.split()))
            busy[0] += 1
            busy[1] = max(busy)
            try:
                return await real(self, query, *args, **kwargs)
            finally:
                busy[0] -= 1
        return call

    for name in _METHODS:
        monkeypatch.setattr(asyncpg.connection.Connection, name,
                            wrap(getattr(asyncpg.connection.Connection, name)))
    await pg.set_password(alice.address, hash_password("pw"))
    pool = await pg_store.open_pool(pg_database_url)
    throttle = SharedThrottle(pg_store.PgFailures(pool, 300.0, owns_pool=False), window=300.0,
                              max_per_ip=5, max_per_user=3)
    auth = Authenticator(pg, AuthSettings(), throttle=throttle)
    try:
        # the first login checks the password and opens both pools' connections
        assert (await auth.authenticate(alice.address, "pw", peer_ip="192.0.2.1")).ok
        for _ in range(2):
            log.clear()
            busy[1] = 0
            result = await auth.authenticate(alice.address, "pw", peer_ip="192.0.2.1")
            assert result.ok
            assert len(log) == 2, log
            assert any("mw_auth_failures" in s for s in log)
            assert any("FROM users" in s for s in log)
            assert busy[1] == 2  # both under way at once
    finally:
        auth.close()
        await pool.close()


async def test_catch_up_reads_the_recent_floor_in_its_statement(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """A catch-up that brings new mail: when another session claimed it already, the one
    statement tells (no second read of the floor); when not, the claim follows at once."""
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    await pg.append(content, [Delivery(box)])
    highest = (await pg.mail_changes(box, 0))[0]
    await pg.append(content, [Delivery(box)])  # UID 2
    assert await pg.claim_recent(box) == 1  # another session claims UIDs 1 and 2
    sent.clear()
    (modseq, entries, gone), floor = await pg.catch_up(box, highest, claim_from=2)
    assert len(sent) == 1 and not sent[0][1], sent
    assert [e.uid for e in entries] == [2] and floor == 3 and gone == [] and modseq > highest
    await pg.append(content, [Delivery(box)])  # UID 3: nobody claimed it
    sent.clear()
    (_, entries, _), floor = await pg.catch_up(box, modseq, claim_from=3)
    assert [in_transaction for _, in_transaction in sent] == [False, False]  # read, claim
    assert [e.uid for e in entries] == [3] and floor == 3
    assert await pg.claim_recent(box) == 4  # claimed by the catch-up
    sent.clear()  # nothing new for this session: the changes alone
    (_, entries, _), floor = await pg.catch_up(box, modseq, claim_from=4)
    assert len(sent) == 1 and [e.uid for e in entries] == [3] and floor is None


async def _blocked(pg: Any, holder: Any, call: Any) -> Any:
    """``call`` started while ``holder`` (a connection in a transaction) holds locks it
    needs; the task, once PostgreSQL shows a backend waiting for a lock."""
    task = asyncio.ensure_future(call)
    for _ in range(500):
        waiting = await pg._pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'")
        if waiting:
            return task
        assert not task.done(), task
        await asyncio.sleep(0.01)
    raise AssertionError("the call never waited for the lock")


async def _another_writer(pg: Any, box: int, *, expunge: bool = True) -> Any:
    """A connection that, in an open transaction holding the mailbox row's lock, gives
    UID 1 the keyword $Other and expunges UID 2, as another session's writer would."""
    holder = await asyncpg.connect(pg._listener._url)
    await holder.execute("BEGIN")
    h = await holder.fetchval(
        "SELECT highestmodseq FROM mailboxes WHERE id = $1 FOR NO KEY UPDATE", box)
    await holder.execute("UPDATE mail SET flags = '{$Other}', modseq = $2"
                         " WHERE mailbox_id = $1 AND uid = 1", box, h + 1)
    if expunge:
        await holder.execute(
            "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES ($1, 2, $2)", box, h + 1)
        await holder.execute("DELETE FROM mail WHERE mailbox_id = $1 AND uid = 2", box)
    await holder.execute("UPDATE mailboxes SET highestmodseq = $2 WHERE id = $1", box, h + 1)
    return holder


async def test_a_store_that_waited_for_another_writer_is_still_one_statement(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """Another writer committed while the STORE waited for the mailbox's lock: the
    statement reads the entries' newest versions under row locks and is done; before, it
    changed nothing and ran again in a transaction (BEGIN, the statement, COMMIT)."""
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    for _ in range(3):
        await pg.append(content, [Delivery(box)])
    start = (await pg.mail_changes(box, 0))[0]
    holder = await _another_writer(pg, box)
    try:
        sent.clear()
        task = await _blocked(pg, holder, pg.set_flags(box, [1, 2, 3], ["\\Seen"], "add",
                                                       unchanged_since=start))
        await holder.execute("COMMIT")
        changed, modified = await task
    finally:
        await holder.close()
    ours = [(sql, tx) for sql, tx in sent if "pg_stat_activity" not in sql]
    assert ours[0][0].startswith("WITH lk") and not ours[0][1]  # alone, outside a transaction
    assert ours[1:] == [("COMMIT", True)], ours  # the other writer's, and nothing after it
    # UID 1 changed after ``start`` (UNCHANGEDSINCE fails for it), UID 2 is gone
    assert modified == [1] and [(e.uid, e.flags) for e in changed] == [(3, {"\\Seen"})]
    assert {e.uid: e.flags for e in await pg.list_mail(box)} == {
        1: {"$Other"}, 3: {"\\Seen"}}
    assert changed[0].modseq == (await pg.mail_changes(box, 0))[0] == start + 2
    holder = await _another_writer(pg, box, expunge=False)  # a new MODSEQ for UID 1
    try:
        task = await _blocked(pg, holder, pg.set_flags(box, [1, 3], ["$New"], "add"))
        await holder.execute("COMMIT")
        changed, modified = await task
    finally:
        await holder.close()
    # the flags added to the newest version of UID 1, not to the one the snapshot held
    assert modified == [] and [(e.uid, e.flags) for e in changed] == [
        (1, {"$Other", "$New"}), (3, {"\\Seen", "$New"})]


async def test_an_expunge_that_waited_for_another_writer_runs_its_statements_once(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """Another writer expunged UID 2 while the EXPUNGE waited for the mailbox's lock: the
    entries are read again under row locks in the same statement (before, it ran again)."""
    box = await inbox_id(pg, alice)
    for i in range(3):
        await pg.append(await pg.store_content(MESSAGE + b"%d\r\n" % i), [Delivery(box)])
    holder = await _another_writer(pg, box)
    try:
        sent.clear()
        task = await _blocked(pg, holder, pg.expunge(box, [1, 2]))
        await holder.execute("COMMIT")
        removed = await task
    finally:
        await holder.close()
    ours = [sql for sql, _ in sent if "pg_stat_activity" not in sql]
    assert [sql.split()[0] for sql in ours] == ["BEGIN", "WITH", "COMMIT", "WITH"], ours
    assert "DELETE FROM contents" in ours[3] and ours[3].endswith("COMMIT")
    assert removed == [1]
    assert [e.uid for e in await pg.list_mail(box)] == [3]
    # UID 2 removed by the other writer (which counted nothing: this test's shortcut)
    assert await pg.usage(alice.id) == (2, 2 * (len(MESSAGE) + 3))
    assert await pg._pool.fetchval("SELECT count(*) FROM contents") == 2


async def test_a_store_with_its_catch_up_reports_others_changes(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """The STORE's statement reports what others changed since the session's MODSEQ with
    its own changes; when another writer committed while it waited for the lock, its
    snapshot misses that, and the catch-up is a statement of its own."""
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    for _ in range(4):
        await pg.append(content, [Delivery(box)])
    known = (await pg.mail_changes(box, 0))[0]
    await pg.set_flags(box, [4], ["$Else"], "add")  # another session's
    await pg.expunge(box, [3])
    await pg.append(content, [Delivery(box)])  # UID 5, unclaimed
    sent.clear()
    (changed, modified), (highest, entries, gone), floor = await pg.set_flags_with_changes(
        box, [1, 4], ["\\Seen"], "add", since_modseq=known, claim_from=5)
    assert [sql.split()[0] for sql, _ in sent] == ["WITH", "WITH"]  # the STORE, the claim
    assert [(e.uid, e.flags) for e in changed] == [(1, {"\\Seen"}), (4, {"$Else", "\\Seen"})]
    assert modified == [] and gone == [3] and floor == 1
    assert (highest, entries, gone) == await pg.mail_changes(box, known)
    # nothing new since: the STORE alone
    sent.clear()
    (changed, _), changes, floor = await pg.set_flags_with_changes(
        box, [2], ["\\Seen"], "add", since_modseq=highest, claim_from=6)
    assert len(sent) == 1 and floor is None
    assert changes == (highest + 1, changed, []) and [e.uid for e in changed] == [2]
    holder = await _another_writer(pg, box, expunge=False)  # $Other on UID 1
    try:
        sent.clear()
        task = await _blocked(pg, holder, pg.set_flags_with_changes(
            box, [2], ["\\Seen"], "remove", since_modseq=highest + 1, claim_from=6))
        await holder.execute("COMMIT")
        (changed, _), (modseq, entries, gone), floor = await task
    finally:
        await holder.close()
    ours = [sql.split()[0] for sql, _ in sent if "pg_stat_activity" not in sql]
    assert ours == ["WITH", "COMMIT", "WITH"]  # the STORE, the other's COMMIT, the catch-up
    assert [(e.uid, e.flags) for e in changed] == [(2, set())]
    assert [(e.uid, e.flags) for e in entries] == [(1, {"$Other"}), (2, set())]
    assert modseq == highest + 3 and gone == [] and floor is None


async def test_a_change_mark_relies_on_a_sync_sent_after_the_request_was_read(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """The LISTEN connection's sync that a settled change mark needs may be any sent after
    the client's request was read (``READ_AT``): one already back serves every later mark
    for that request, and concurrent ones share one; a request read after it needs its
    own, which hears of everything committed before."""
    box = await inbox_id(pg, alice)
    first = await pg.change_mark(box)  # opens the LISTEN connection
    loop = asyncio.get_running_loop()
    token = READ_AT.set(loop.time())
    try:
        sent.clear()
        mark = await pg.change_mark(box, first)
        assert [sql for sql, _ in sent] == ["SELECT 1"] and mark == first
        sent.clear()  # the same request: that sync was sent after it was read
        assert await pg.change_mark(box, mark) == mark
        assert await pg.change_mark(box + 1, None) is not None
        assert sent == []
        await pg.append(await pg.store_content(MESSAGE), [Delivery(box)])  # notifies
        READ_AT.set(loop.time())  # a request read after that commit
        sent.clear()
        changed = await pg.change_mark(box, mark)  # a sync unless the news is in already
        assert changed != mark and [sql for sql, _ in sent] in ([], ["SELECT 1"])
        READ_AT.set(loop.time())
        sent.clear()
        marks = await asyncio.gather(*(pg.change_mark(box, changed) for _ in range(3)))
        assert [sql for sql, _ in sent] == ["SELECT 1"] and marks == [changed] * 3
    finally:
        READ_AT.reset(token)
    sent.clear()  # no request known: a sync of its own, as before
    assert await pg.change_mark(box, changed) == changed
    assert [sql for sql, _ in sent] == ["SELECT 1"]


async def test_an_imap_append_reads_its_catch_up_and_claims_in_its_statement(
        pg: Any, alice: User, sent: list[tuple[str, bool]]) -> None:
    """An APPEND to the selected mailbox (``append_many_with_changes``): the statement also
    reads what others changed since the session's MODSEQ and claims the new mail as
    \\Recent (it was the APPEND, the catch-up, then the claim: three round trips); when
    another writer committed while it waited for the lock, the catch-up and the claim
    follow on their own."""
    box = await inbox_id(pg, alice)
    content = await pg.store_content(MESSAGE)
    for _ in range(3):
        await pg.append(content, [Delivery(box)])
    known = (await pg.mail_changes(box, 0))[0]
    await pg.set_flags(box, [1], ["$Else"], "add")  # others' changes
    await pg.expunge(box, [2])
    await pg.append(content, [Delivery(box)])  # UID 4, not claimed yet
    fresh = await _unsaved(pg, MESSAGE + b"new\r\n")
    # the date in another zone: the catch-up's entry has it as read back, in UTC
    date = datetime(2026, 1, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    sent.clear()
    entries, changes, floor = await pg.append_many_with_changes(
        [(fresh, Delivery(box, frozenset({"\\Seen"}), date))], mailbox_id=box,
        since_modseq=known, claim_from=4, enforce_quota=True)
    assert len(sent) == 1 and not sent[0][1], sent
    assert [(e.uid, e.flags) for e in entries] == [(5, {"\\Seen"})]
    assert changes == await pg.mail_changes(box, known)
    assert [e.uid for e in changes[1]] == [1, 4, 5] and changes[2] == [2]
    assert changes[1][-1].internal_date.utcoffset() == timedelta(0)
    assert changes[1][-1].internal_date == date
    assert floor == 1 and await pg.claim_recent(box) == 6  # UIDs 1 to 5 claimed here
    assert await pg.read_content(fresh.sha256) == MESSAGE + b"new\r\n"
    assert await pg.usage(alice.id) == (4, 3 * len(MESSAGE) + len(MESSAGE) + 5)
    # read-only: nothing claimed
    entries, changes, floor = await pg.append_many_with_changes(
        [(content, Delivery(box))], mailbox_id=box, since_modseq=changes[0], claim_from=None)
    assert floor is None and [e.uid for e in changes[1]] == [6] == [e.uid for e in entries]
    assert await pg.claim_recent(box) == 6  # UID 6 was left to claim: claimed now
    holder = await _another_writer(pg, box, expunge=False)  # $Other on UID 1
    try:
        sent.clear()
        task = await _blocked(pg, holder, pg.append_many_with_changes(
            [(content, Delivery(box))], mailbox_id=box, since_modseq=changes[0],
            claim_from=7))  # a session that knows UID 6
        await holder.execute("COMMIT")
        entries, (modseq, changed, gone), floor = await task
    finally:
        await holder.close()
    ours = [sql.split()[0] for sql, _ in sent if "pg_stat_activity" not in sql]
    assert ours == ["WITH", "COMMIT", "WITH", "WITH"]  # the append, the other's, the
    # catch-up, the claim
    assert [e.uid for e in entries] == [7] and floor == 7
    assert [(e.uid, e.flags) for e in changed] == [(1, {"$Other"}), (7, set())]
    assert modseq == entries[0].modseq and gone == []
    with pytest.raises(NotFound):
        await pg.append_many_with_changes([(content, Delivery(987_654))],
                                          mailbox_id=987_654, since_modseq=0, claim_from=1)


async def test_the_imap_append_statement_is_planned_once(pg_database_url: str,
                                                          tmp_path: Path) -> None:
    """The APPEND with its catch-up is a prepared statement that PostgreSQL plans once for
    any arguments (a generic plan), as the other hot statements: custom plans, chosen when
    the generic one looks much dearer, cost more to plan each time than the statement takes
    to run. (``= ANY`` of the mailbox-id array in its catch-up part made it look so.)"""
    store = await PostgresStorage.open(pg_database_url, min_size=1, max_size=1)
    try:
        await store.upgrade()
        user, _ = await store.add_user("alice@example.org", HASH, create_domain=True)
        box = await inbox_id(store, user)
        since = 0
        for i in range(8):
            info = await _unsaved(store, MESSAGE + b"%d\r\n" % i)
            [entry], changes, _ = await store.append_many_with_changes(
                [(info, Delivery(box))], mailbox_id=box, since_modseq=since, claim_from=i + 1)
            assert entry.uid == i + 1
            since = changes[0]
        plans = await store._pool.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE 'WITH box AS%'")
        assert plans is not None and plans["generic_plans"] > 0, plans
    finally:
        await store.close()
