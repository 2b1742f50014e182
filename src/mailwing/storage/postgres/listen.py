"""PostgreSQL LISTEN for ``Storage.wait_for_change`` (IMAP IDLE, RFC 2177), across nodes.

Every transaction that raises a mailbox's HIGHESTMODSEQ runs ``pg_notify('mailwing_changes',
'<mailbox id>')``; PostgreSQL delivers it at commit to every session listening on the channel,
whichever node it runs on. Each storage object keeps one dedicated connection outside its
pool for that, opened on the first wait (a process with no IDLE session never holds it).
When the connection drops, every waiter is woken (notifications may have been lost meanwhile)
and the next check reconnects; until then the waiters' periodic re-check carries on alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from mailwing.storage.notify import ChangeWaiters, parse_ids

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
            if had_one:
                self._waiters.wake(None)  # changes during the gap went unannounced

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self._waiters.wake(parse_ids(str(payload)))

    def _lost(self, _conn: Any) -> None:
        self._waiters.wake(None)  # they re-check now, and the next ensure() reconnects

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._lost)
            try:
                await asyncio.wait_for(conn.close(), self._timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
