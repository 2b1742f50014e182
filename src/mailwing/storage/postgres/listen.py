"""PostgreSQL LISTEN for ``Storage.wait_for_change`` (IMAP IDLE, RFC 2177), across nodes.

Every transaction that raises a mailbox's HIGHESTMODSEQ runs ``pg_notify('mailwing_changes',
'<mailbox id>')``; PostgreSQL delivers it at commit to every session listening on the channel,
whichever node it runs on. Each storage object keeps one dedicated connection outside its
pool for that, opened on the first wait (a process with no IDLE session never holds it).
When the connection drops, every waiter is woken (notifications may have been lost meanwhile)
and the next check reconnects; until then the waiters' periodic re-check carries on alone.

The same connection lets an IMAP session skip its per-command catch-up query when nothing
changed (:meth:`PgListener.mark`): every notification bumps a per-mailbox counter in this
process, so "did mailbox M change since my last look?" is a comparison of counters. The race
between another session's commit and the delivery of its notification is closed by a round
trip on the listening connection itself (:meth:`PgListener.sync`): PostgreSQL signals the
listening backends inside the notifier's commit, before the notifier's client is told the
commit is done, and a listening backend that has a notification pending sends it before the
``ReadyForQuery`` that ends its next statement (``PostgresMain``: "if any notifies were
received during the just-finished transaction, they'll be seen by the client before
ReadyForQuery is"). So a ``SELECT 1`` sent after a client saw another session's OK returns
after that session's notifications, and asyncpg runs the notification callbacks (``call_soon``)
before the coroutine awaiting the ``SELECT 1`` resumes. Concurrent callers share one such
round trip, as long as it was sent after they asked. Whenever the connection is not known to
be healthy (not open yet, lost, a sync failing or timing out), :meth:`PgListener.mark` answers
None and the caller queries as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from mailwing.storage.notify import READ_AT, ChangeWaiters, parse_ids

__all__ = ["CHANNEL", "PgListener"]

CHANNEL = "mailwing_changes"
_log = logging.getLogger(__name__)


class PgListener:
    """One LISTEN connection, (re)opened by :meth:`ensure`."""

    def __init__(self, url: str, waiters: ChangeWaiters, *, timeout: float = 10.0) -> None:
        self._url = url
        self._waiters = waiters
        self._timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        #: bumped by every (re)connection and loss: marks of different generations differ
        self._generation = 0
        #: bumped by a "wake everyone" notification (``*``)
        self._epoch = 0
        #: notifications received per mailbox id, in this process
        self._counts: dict[int, int] = {}
        #: the sync not sent yet, which every caller arriving now joins
        self._queued: asyncio.Future[bool] | None = None
        self._syncer: asyncio.Task[None] | None = None
        #: the sync on its way: (generation, loop time it was sent at, its outcome)
        self._sending: tuple[int, float, asyncio.Future[bool]] | None = None
        #: (generation, loop time) of the latest sync sent that came back
        self._synced: tuple[int, float] = (-1, 0.0)

    def _alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def ensure(self) -> None:
        """Listen unless already listening; a failure is logged, not raised (the waiters'
        periodic re-check still works, and the next call tries again)."""
        if self._alive() or self._closed:
            return
        async with self._lock:
            if self._alive() or self._closed:
                return
            had_one = self._conn is not None
            try:
                conn = await asyncpg.connect(self._url, timeout=self._timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                _log.warning("cannot LISTEN for mailbox changes: %s", exc)
                return
            try:
                await conn.add_listener(CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                _log.warning("cannot LISTEN for mailbox changes: %s", exc)
                conn.terminate()
                return
            conn.add_termination_listener(self._lost)
            self._conn = conn
            self._generation += 1
            if had_one:
                self._waiters.wake(None)  # changes during the gap went unannounced

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        ids = parse_ids(str(payload))
        if ids is None:
            self._epoch += 1
        else:
            for mailbox_id in ids:
                self._counts[mailbox_id] = self._counts.get(mailbox_id, 0) + 1
        self._waiters.wake(ids)

    def _lost(self, _conn: Any) -> None:
        self._generation += 1
        self._waiters.wake(None)  # they re-check now, and the next ensure() reconnects

    async def mark(self, mailbox_id: int, since: object = None, *, settled: bool = True
                   ) -> tuple[int, int, int] | None:
        """A value equal to an earlier mark of ``mailbox_id`` only if no notification for it
        arrived in between, taken after every notification committed before this call is
        in; None when the connection is not known to be healthy (see the module docstring).

        Only equality needs the sync round trip: when the counters already differ from
        ``since`` (the caller's previous mark), the caller will query anyway, and a
        notification still on its way only makes its next mark differ once more. Nor does
        a mark the caller reads the mailbox after (``settled=False``, SELECT): a change whose
        notification is still on its way committed before that read, and the notification
        only makes the next mark differ."""
        await self.ensure()
        generation = self._generation
        if not self._alive():
            return None
        current = (generation, self._epoch, self._counts.get(mailbox_id, 0))
        if (since is not None and current != since) or not settled:
            return current
        if not await self.sync(READ_AT.get()) or generation != self._generation:
            return None
        return generation, self._epoch, self._counts.get(mailbox_id, 0)

    async def sync(self, after: float | None = None) -> bool:
        """One round trip on the listening connection, sent after this call began: True
        once it is back (notifications committed before the call have been handled), False
        if the connection failed. Concurrent callers share one round trip.

        ``after``: a loop time before which every commit that matters to the caller was
        done (:data:`~mailwing.storage.notify.READ_AT`, when its client's request was
        read). A round trip sent after it on this connection does as well: one back
        already answers at once, one on its way is joined. So the sessions of a busy
        process share the round trips of the moment instead of one each per command."""
        if not self._alive() or self._closed:
            return False
        if after is not None:
            generation, sent_at = self._synced
            if generation == self._generation and sent_at > after:
                return True
            sending = self._sending
            if sending is not None and sending[0] == self._generation and sending[1] > after:
                return await asyncio.shield(sending[2])
        waiter = self._queued
        if waiter is None:
            waiter = self._queued = asyncio.get_running_loop().create_future()
            if self._syncer is None or self._syncer.done():
                self._syncer = asyncio.create_task(self._sync_loop())
        # shielded: a cancelled command must not cancel the round trip others wait for
        return await asyncio.shield(waiter)

    async def _sync_loop(self) -> None:
        while self._queued is not None:
            waiter, self._queued = self._queued, None
            ok = False
            conn = self._conn
            if conn is not None and not conn.is_closed():
                generation, sent_at = self._generation, asyncio.get_running_loop().time()
                self._sending = (generation, sent_at, waiter)
                try:
                    async with asyncio.timeout(self._timeout):
                        await conn.execute("SELECT 1")
                    ok = True
                    if self._synced < (generation, sent_at):
                        self._synced = (generation, sent_at)
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError
                        ) as exc:
                    _log.warning("LISTEN connection failed a sync: %s", exc)
                    if self._conn is conn:
                        self._conn = None
                        self._generation += 1
                    conn.remove_termination_listener(self._lost)
                    conn.terminate()
                    self._waiters.wake(None)
            self._sending = None
            if not waiter.done():
                waiter.set_result(ok)

    async def close(self) -> None:
        self._closed = True
        if self._syncer is not None:
            self._syncer.cancel()
        if self._queued is not None and not self._queued.done():
            self._queued.set_result(False)
        self._queued = None
        if self._sending is not None and not self._sending[2].done():
            self._sending[2].set_result(False)  # its round trip was cancelled above
        self._sending = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._lost)
            try:
                await asyncio.wait_for(conn.close(), self._timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
