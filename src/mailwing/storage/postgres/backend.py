"""The multi-node backend: everything, contents included, in one PostgreSQL database.

The operations are the shared scripts (:mod:`mailwing.storage.scripts`), each driven with
``await`` inside one transaction on a pooled asyncpg connection. READ COMMITTED is enough:
the UID allocation is an ``UPDATE mailboxes ... RETURNING`` whose row lock serialises
concurrent appends to one mailbox until commit (RFC 3501 section 2.3.1.1 needs strictly
ascending, never reused UIDs), and schema upgrades take an advisory lock. A read-only script
of one statement runs alone (autocommit); one of several runs in REPEATABLE READ so that they
see one snapshot (``vanished_since``), see :meth:`PostgresStorage._read`. The hottest scripts
(a delivery, STORE, the IMAP catch-up and ``\\Recent`` claim) have versions of their own here
that take one statement each (:mod:`.scripts`).

A transaction that raises mailboxes' HIGHESTMODSEQ sends ``NOTIFY mailwing_changes`` with
the mailbox ids together with its ``COMMIT`` (delivered at commit, to every node);
:mod:`.listen` receives them for ``wait_for_change`` and ``change_mark``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Sequence
from contextlib import aclosing, closing
from typing import Any, TypeVar, cast

import asyncpg
import asyncpg.pool

from mailwing.model import ContentInfo, Mailbox, MailEntry
from mailwing.storage import steps
from mailwing.storage.base import ScriptedStorage
from mailwing.storage.contentcache import DEFAULT_CONTENT_CACHE_SIZE, ContentCache, slices
from mailwing.storage.interface import (
    ContentWriter,
    Delivery,
    FlagMode,
    Outbound,
    RecipientLookup,
)
from mailwing.storage.migrate import load_migrations
from mailwing.storage.notify import ChangeWaiters, format_ids
from mailwing.storage.postgres.batch import DeliveryBatcher, batchable
from mailwing.storage.postgres.content import (
    PgContentWriter,
    UnsavedContents,
    read_many,
    read_pieces,
)
from mailwing.storage.postgres.errors import BROKEN_CONNECTION, pg_errors
from mailwing.storage.postgres.gc import collect_garbage
from mailwing.storage.postgres.listen import CHANNEL, PgListener
from mailwing.storage.postgres.recipients import RecipientLookups
from mailwing.storage.postgres.scripts import (
    AtCommit,
    Solo,
    catch_up,
    claim_recent,
    expunge,
    mail_changes,
    open_mailbox,
    set_flags,
    set_flags_caught_up,
)
from mailwing.storage.postgres.scripts_append import append, append_caught_up
from mailwing.storage.scripts_catchup import Changes, doomed
from mailwing.storage.scripts_mail import flags_unchanged
from mailwing.storage.steps import Script, advance

__all__ = ["PostgresStorage"]

T = TypeVar("T")
#: what a transaction script runs on: a pooled connection (or a plain one)
_Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_MIGRATIONS = load_migrations("mailwing.storage.postgres")
_BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED"
_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
#: a ``Volatile`` transaction's commit does not wait for the WAL flush (checked at COMMIT)
_ASYNC_COMMIT = "SET LOCAL synchronous_commit TO off; "


def _notify_sql(mailbox_ids: set[int]) -> str:
    """``pg_notify`` of those ids as SQL text to send with the COMMIT (digits and spaces, or
    ``*``: nothing to quote)."""
    payload = format_ids(mailbox_ids).decode("ascii")
    return f"SELECT pg_notify('{CHANNEL}', '{payload}'); "


async def _roll_back(conn: _Conn) -> None:
    """End a failed transaction; a connection that cannot (a cancelled query still pending,
    a broken socket) is dropped, and the pool opens a fresh one."""
    if conn.is_closed() or not conn.is_in_transaction():
        return
    try:
        await conn.execute("ROLLBACK")
    except (Exception, asyncio.CancelledError):
        conn.terminate()


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond asyncpg's own ROLLBACK of a transaction
    left open. The default runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` — one more round trip per storage call — for session state mailwing never
    creates on pooled connections (advisory locks are transaction-scoped, no cursor outlives
    its transaction, LISTEN has its own connection, nothing runs SET)."""


@functools.lru_cache(maxsize=256)
def to_pg_sql(sql: str) -> str:
    """``col @IN($n)`` becomes ``col = ANY($n)`` (the parameter is sent as an array);
    ``@HASFLAG(col, $n)`` becomes ``$n = ANY(col)``."""
    sql = steps.IN_LIST.sub(r"= ANY($\1)", sql)
    return steps.HAS_FLAG.sub(r"($\2 = ANY(\1))", sql)


def _adapt(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(value)
    return value


class PostgresStorage(ScriptedStorage):
    MIGRATIONS = _MIGRATIONS
    LATEST_SCHEMA = _MIGRATIONS[-1].version
    BACKEND = "postgresql"
    SIZE_SQL = "SELECT pg_database_size(current_database())"
    # one statement each instead of several round trips (see .scripts)
    _append_script = staticmethod(append)
    _claim_recent_script = staticmethod(claim_recent)
    _set_flags_script = staticmethod(set_flags)
    _mail_changes_script = staticmethod(mail_changes)

    def __init__(self, pool: asyncpg.Pool, url: str | None = None,
                 *, fsync_flag_changes: bool = False,
                 content_cache_size: int = DEFAULT_CONTENT_CACHE_SIZE) -> None:
        self._pool = pool
        self.fsync_flag_changes = fsync_flag_changes
        #: contents read before, by digest (immutable: nothing to invalidate)
        self.content_cache = ContentCache(content_cache_size)
        #: read scripts (their code objects) that took several statements last time
        self._multi_step: set[object] = set()
        self._waiters = ChangeWaiters()
        self._listener = PgListener(url, self._waiters) if url else None
        #: small contents whose writers finished without storing them (digest -> bytes):
        #: the delivery that links one inserts its bytes in its own statement (see
        #: :meth:`append`); any other storage call stores them first (:meth:`_save_unsaved`)
        self._unsaved = UnsavedContents()
        #: deliveries that arrive together commit together (:mod:`.batch`)
        self._deliveries = DeliveryBatcher(self._run)
        #: so do RCPT lookups (:mod:`.recipients`)
        self._recipients = RecipientLookups(self._read)

    @classmethod
    async def open(
        cls, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0,
        fsync_flag_changes: bool = False,
        content_cache_size: int = DEFAULT_CONTENT_CACHE_SIZE,
    ) -> PostgresStorage:
        with pg_errors():
            pool = await asyncpg.create_pool(
                url, min_size=min_size, max_size=max_size, timeout=timeout,
                command_timeout=60.0, reset=_keep_session,
            )
        return cls(pool, url, fsync_flag_changes=fsync_flag_changes,
                   content_cache_size=content_cache_size)

    async def close(self) -> None:
        await self._deliveries.close()
        await self._recipients.close()
        if self._unsaved:  # what finish() returned is stored, whatever came after it
            await self._save_unsaved()
        if self._listener is not None:
            await self._listener.close()
        await self._pool.close()

    async def _start_listening(self) -> None:
        if self._listener is not None:
            await self._listener.ensure()

    # A STORE and a one-message APPEND are one statement committed alone here (a leading
    # ``Solo``), which also reads the catch-up after it when its snapshot is current
    # (:func:`.scripts.set_flags_caught_up`, :func:`.scripts_append.append_caught_up`);
    # otherwise the catch-up is one statement read alone (:meth:`_read`). Taken together in one
    # transaction, as the shared implementation does for SQLite's database thread, they
    # would add ``BEGIN`` and ``COMMIT``: four round trips instead of one or two. Nothing
    # needs them atomic: the catch-up only reads what committed by then.
    async def set_flags_with_changes(
        self, mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
        *, since_modseq: int, claim_from: int | None = None,
        unchanged_since: int | None = None, expect_noop: bool = False,
    ) -> tuple[tuple[list[MailEntry], list[int]], Changes, int | None]:
        if expect_noop:
            modified = await self._read(flags_unchanged, mailbox_id, uids, flags, mode,
                                        unchanged_since)
            if modified is not None:
                changes, floor = await self.catch_up(mailbox_id, since_modseq,
                                                     claim_from=claim_from)
                return ([], modified), changes, floor
        result, caught = await self._run(set_flags_caught_up(
            mailbox_id, uids, flags, mode, unchanged_since, since_modseq, claim_from,
            volatile=not self.fsync_flag_changes))
        if caught is None:  # another writer committed while the STORE waited for the lock
            changes, floor = await self.catch_up(mailbox_id, since_modseq,
                                                 claim_from=claim_from)
            return result, changes, floor
        changes, claim, floor = caught
        if claim and floor is None:
            floor = await self._run(self._claim_recent_script(
                mailbox_id, volatile=not self.fsync_flag_changes))
        return result, changes, floor

    async def append_many_with_changes(
        self, items: Sequence[tuple[ContentInfo, Delivery]], *, mailbox_id: int,
        since_modseq: int, claim_from: int | None = None, enforce_quota: bool = False,
    ) -> tuple[list[MailEntry], Changes, int | None]:
        """One message to ``mailbox_id`` (an IMAP APPEND to the selected mailbox): its
        statement reads the catch-up and makes the claim
        (:func:`.scripts_append.append_caught_up`)."""
        if len(items) == 1 and items[0][1].mailbox_id == mailbox_id:
            [(content, delivery)] = items
            data = self._unsaved.take(content.sha256)
            try:
                entries, caught = await self._run(append_caught_up(
                    content, delivery, enforce_quota, data, since_modseq, claim_from))
            finally:
                if data is not None:
                    self._unsaved.done(content.sha256)
            if caught is not None:
                return entries, caught[0], caught[1]
            changes, floor = await self.catch_up(mailbox_id, since_modseq, claim_from=claim_from)
            return entries, changes, floor
        entries = await self.append_many(items, enforce_quota=enforce_quota)
        changes, floor = await self.catch_up(mailbox_id, since_modseq, claim_from=claim_from)
        return entries, changes, floor

    async def expunge_with_changes(
        self, mailbox_id: int, deleted: Collection[int], *, highest_known: int,
        since_modseq: int, claim_from: int | None = None,
    ) -> tuple[list[int], Changes, int | None]:
        changes, floor = await self.catch_up(mailbox_id, since_modseq, claim_from=claim_from)
        uids = doomed(deleted, highest_known, changes)
        return (await self.expunge(mailbox_id, uids) if uids else []), changes, floor

    async def catch_up(self, mailbox_id: int, since_modseq: int, *,
                       claim_from: int | None = None) -> tuple[Changes, int | None]:
        """The catch-up reads the \\Recent floor with the changes (:func:`.scripts.catch_up`):
        new mail that another session claimed already needs no second read, and new mail
        to claim goes straight to the claim. One statement where there were two."""
        changes, claim, floor = await self._read(catch_up, mailbox_id, since_modseq,
                                                 claim_from)
        if claim and floor is None:
            floor = await self._run(self._claim_recent_script(
                mailbox_id, volatile=not self.fsync_flag_changes))
        return changes, floor

    async def open_mailbox(
        self, mailbox_id: int, since_modseq: int, *, claim: bool,
        named: tuple[int, str, int] | None = None,
    ) -> tuple[Mailbox | None, Changes, int | None]:
        """One statement (:func:`.scripts.open_mailbox`) instead of three (the claim's read,
        the catch-up, the mailbox row; with ``named``, four: the lookup by name too, which
        the statement checks instead). When it finds something to claim, the claim comes
        first, as everywhere (UIDs appended between these reads and a later claim would be
        claimed without being listed): the claim, then the reads again, as many statements
        as the shared way."""
        read: tuple[Mailbox, Changes, int | None] = await self._read(
            open_mailbox, mailbox_id, since_modseq, named)
        box: Mailbox | None = read[0]
        changes, floor = read[1], read[2]
        if not claim:
            return box, changes, None
        if floor is None:
            floor = await self._run(self._claim_recent_script(
                mailbox_id, volatile=not self.fsync_flag_changes))
            changes, box = await asyncio.gather(self.mail_changes(mailbox_id, since_modseq),
                                                self.get_mailbox_by_id(mailbox_id))
        return box, changes, floor

    async def lookup_recipient(self, address: str) -> RecipientLookup | None:
        """Lookups under way at once in this process share one statement
        (:mod:`.recipients`)."""
        return await self._recipients.lookup(address)

    async def change_mark(self, mailbox_id: int, since: Hashable | None = None,
                          *, settled: bool = True) -> Hashable | None:
        """From the LISTEN connection's notification counters (:meth:`.PgListener.mark`)."""
        if self._listener is None:
            return None
        with pg_errors():
            return await self._listener.mark(mailbox_id, since, settled=settled)

    async def _save_unsaved(self) -> None:
        """Store the contents left by finished writers and not linked by :meth:`append`
        (an IMAP APPEND links them with ``append_many``, a reader may ask for them), so that
        every other call sees what ``finish()`` returned as stored, as it always did."""
        await self._unsaved.save(self._pool)

    async def _run(self, script: Script[T], *, write: bool = True) -> T:
        if self._unsaved:
            await self._save_unsaved()
        with pg_errors():
            async with self._pool.acquire() as conn:
                try:
                    return await self._transaction(conn, script, write=write)
                except BROKEN_CONNECTION:
                    conn.terminate()  # the pool opens a fresh one instead of reusing it
                    raise

    async def _read(self, script: Callable[..., Script[T]], *args: Any) -> T:
        """A read whose first statement is also its last needs no snapshot: it runs alone,
        without ``BEGIN`` and ``COMMIT`` (two round trips of three). A read that asks for a
        second statement is started over in a REPEATABLE READ transaction, and remembered
        as such: the next call of the same script goes straight to the transaction, until
        one of them turns out to need a single statement again."""
        if self._unsaved:
            await self._save_unsaved()
        with pg_errors():
            async with self._pool.acquire() as conn:
                try:
                    key = getattr(script, "__code__", script)
                    if key not in self._multi_step:
                        started = script(*args)
                        with closing(started):
                            done, item = advance(started, None)
                            if not done:
                                done, item = advance(started, await self._step(conn, item))
                            if done:
                                return cast(T, item)
                        self._multi_step.add(key)
                    return await self._transaction(conn, script(*args), write=False)
                except BROKEN_CONNECTION:
                    conn.terminate()
                    raise

    async def _transaction(self, conn: _Conn, script: Script[T], *, write: bool) -> T:
        """``script`` in one transaction. The NOTIFY of every mailbox it changed (its
        ``Changed`` steps) goes with the ``COMMIT``, in one round trip: both are plain SQL
        in one simple-protocol query, and PostgreSQL delivers notifications at commit anyway.
        So does ``SET LOCAL synchronous_commit TO off`` for a ``Volatile`` one, and the SQL
        of its :class:`~.scripts.AtCommit` steps, first.

        A write script whose first statement is a :class:`~.scripts.Solo` runs it alone, as a
        transaction of its own (no ``BEGIN``, no ``COMMIT``: one round trip instead of
        three); the statement raises its own notifications and relaxes its own commit. A
        step after it opens a transaction for the rest of the script (``BEGIN`` is sent
        lazily, before the first statement that is not a leading ``Solo``).
        """
        changed: set[int] = set()
        at_commit: list[str] = []
        volatile = False
        steps_taken = 0
        solo = False  # a leading Solo statement ran (and committed) alone
        begun = not write
        if begun:
            await conn.execute(_BEGIN_READ)
        try:
            with closing(script):
                done, item = advance(script, None)
                while not done:
                    if isinstance(item, steps.Changed):
                        if begun or not solo:  # else the Solo statement notified them
                            changed.update(item.mailbox_ids)
                        result = None
                    elif isinstance(item, steps.Volatile):
                        volatile = True
                        result = None
                    elif isinstance(item, AtCommit) and begun:
                        at_commit.append(item.sql)
                        result = None
                    elif isinstance(item, Solo) and not begun and not steps_taken:
                        result = await conn.fetch(item.sql, *item.args)
                        steps_taken += 1
                        solo = True
                    else:
                        if not begun:
                            await conn.execute(_BEGIN_WRITE)
                            begun = True
                        result = await self._step(conn, item)
                        steps_taken += 1
                    done, item = advance(script, result)
        except BaseException:
            await _roll_back(conn)
            raise
        if not begun:  # nothing, or a Solo statement alone: already committed
            if changed:  # a script without statements that still says so
                await conn.execute(_notify_sql(changed))
            return cast(T, item)
        try:
            tail = "".join(at_commit) + (_ASYNC_COMMIT if volatile else "")
            await conn.execute(tail + (_notify_sql(changed) if changed else "") + "COMMIT")
        except BaseException:
            await _roll_back(conn)  # a failed NOTIFY skips the COMMIT after it
            raise
        if not write and steps_taken <= 1:
            self._multi_step.discard(getattr(script, "gi_code", None))
        return cast(T, item)

    async def _step(self, conn: _Conn, step: Any) -> Any:
        if isinstance(step, steps.Query):
            return await conn.fetch(to_pg_sql(step.sql), *[_adapt(a) for a in step.args])
        if isinstance(step, steps.Batch):  # an AtCommit too, outside a transaction
            return await conn.execute(step.sql)
        if isinstance(step, steps.TableExists):
            return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", step.name)
        if isinstance(step, steps.Changed):
            for mailbox_id in step.mailbox_ids:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(mailbox_id))
            return None
        if isinstance(step, steps.Serialize):
            return await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", step.key)
        if isinstance(step, steps.HasBlob):
            row = await conn.fetchval(
                "SELECT 1 FROM content_chunks WHERE sha256 = $1 AND seq = 0 FOR SHARE",
                step.sha256,
            )
            return row is not None
        if isinstance(step, steps.DropBlobs):
            return await conn.execute(
                "DELETE FROM content_chunks WHERE sha256 = ANY($1)", list(step.sha256s)
            )
        raise TypeError(f"unknown step {step!r}")

    async def collect_garbage(self, min_age: float = 3600.0) -> int:
        """Remove abandoned staging pieces, unlinked pieces and unreferenced contents older
        than ``min_age`` seconds (see :mod:`.gc`); return how many."""
        if self._unsaved:
            await self._save_unsaved()
        with pg_errors():
            return await collect_garbage(self._pool, min_age)

    def new_content(self) -> ContentWriter:
        return PgContentWriter(self._pool, self._unsaved)

    async def read_contents(self, contents: Sequence[ContentInfo]) -> dict[str, bytes]:
        """From :attr:`content_cache`, and one query for the others (see :func:`.read_many`),
        which the cache then keeps."""
        if self._unsaved:
            await self._save_unsaved()
        cache = self.content_cache
        found: dict[str, bytes] = {}
        missing = []
        for content in contents:
            data = cache.get(content.sha256, content.size)
            if data is None:
                missing.append(content)
            else:
                found[content.sha256] = data
        if missing:
            with pg_errors():
                read = await read_many(self._pool, missing)
            for sha256, data in read.items():
                cache.put(sha256, data)
            found.update(read)
        return found

    def open_content(self, sha256: str, *, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        if self._unsaved:
            return self._read_after_saving(sha256, chunk_size)
        data = self.content_cache.get(sha256)
        if data is not None:
            return slices(data, chunk_size)
        return read_pieces(self._pool, sha256, chunk_size)

    async def _read_after_saving(self, sha256: str, chunk_size: int) -> AsyncIterator[bytes]:
        await self._save_unsaved()
        async with aclosing(read_pieces(self._pool, sha256, chunk_size)) as pieces:
            async for chunk in pieces:
                yield chunk

    async def append(
        self, content: ContentInfo, deliveries: Sequence[Delivery],
        *, outbound: Outbound | None = None, enforce_quota: bool = False,
    ) -> list[MailEntry]:
        """A content its writer left unstored (an SMTP message, ``deliver``: nearly all mail
        is one piece) goes in with the delivery, in its statement: one round trip and one
        commit per message instead of two of each. A delivery that needs no quota check in
        its transaction (SMTP) commits together with the others of this process under way
        at the same time (:mod:`.batch`): one statement and one WAL flush for all of them."""
        data = self._unsaved.take(content.sha256) if outbound is None else None
        if outbound is None and not enforce_quota and batchable(deliveries):
            try:
                return await self._deliveries.deliver(content, deliveries, data)
            finally:
                if data is not None:
                    self._unsaved.done(content.sha256)
        if data is None:
            return await super().append(content, deliveries, outbound=outbound,
                                        enforce_quota=enforce_quota)
        try:
            return await self._run(append(content, list(deliveries), enforce_quota, data))
        finally:
            self._unsaved.done(content.sha256)

    async def append_many(
        self, items: Sequence[tuple[ContentInfo, Delivery]], *, enforce_quota: bool = False,
    ) -> list[MailEntry]:
        """One message (an IMAP APPEND) is :meth:`append`'s statement: its content is
        stored with it, and it takes one round trip in a transaction instead of eight."""
        if len(items) == 1:
            [(content, delivery)] = items
            return await self.append(content, [delivery], enforce_quota=enforce_quota)
        return await super().append_many(items, enforce_quota=enforce_quota)

    async def expunge(self, mailbox_id: int, uids: Collection[int]) -> list[int]:
        """In two statements (:func:`.scripts.expunge`), with one lock order for appends."""
        return await self._run(
            expunge(mailbox_id, list(uids), volatile=not self.fsync_flag_changes))
