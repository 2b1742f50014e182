"""Who waits for which mailbox: the in-process half of ``Storage.wait_for_change``.

An IMAP IDLE session (RFC 2177) or a NOTIFY-less NOOP poller waits until a mailbox's
HIGHESTMODSEQ (RFC 7162 section 3.1.1) rises. Each waiting coroutine registers an
:class:`asyncio.Event` here under its mailbox id; a backend's transport (PostgreSQL
LISTEN/NOTIFY, or SQLite's datagram sockets between processes) calls :meth:`ChangeWaiters.wake`
with the ids a committed transaction changed, from any thread. A wake-up is only a hint: the
waiter re-reads HIGHESTMODSEQ before deciding anything, so spurious or duplicated wake-ups
cost one query, and lost ones are caught by the periodic re-check in
:meth:`mailwing.storage.base.ScriptedStorage.wait_for_change`.

``asyncio`` is imported only when a coroutine starts waiting: the payload helpers here are
also used by processes that only send wake-ups (``mailwing deliver``, issue #9), which never
load the event loop machinery.
"""

from __future__ import annotations

import _thread
import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["READ_AT", "ChangeWaiters", "format_ids", "parse_ids"]

#: The event loop's time (``loop.time()``) at which the request being served had been read
#: from its client, set by the protocol session for the storage calls it makes for it
#: (None: unknown). Whatever a client saw committed before it sent the request committed
#: before then, so a storage that must make sure it has heard of every such commit (a
#: change mark, ``Storage.change_mark``) may rely on a check of its notifications that
#: began after this time, whoever asked for that check.
READ_AT: ContextVar[float | None] = ContextVar("mailwing_read_at", default=None)

_ALL = b"*"
_MAX_PAYLOAD = 4000  # bytes; more ids than fit are sent as "wake everyone"


class _Waiter:
    __slots__ = ("event", "loop")

    def __init__(self) -> None:
        import asyncio  # lazily: see the module docstring

        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()


class ChangeWaiters:
    """A thread-safe registry of waiting coroutines, keyed by mailbox id."""

    def __init__(self) -> None:
        # _thread's lock is threading.Lock; the threading module itself is not needed by
        # the processes that only send wake-ups (mailwing deliver, issue #9)
        self._lock = _thread.allocate_lock()
        self._by_mailbox: dict[int, set[_Waiter]] = {}

    @contextlib.contextmanager
    def watch(self, mailbox_id: int) -> Iterator[asyncio.Event]:
        """Register for the duration of the block; the event is set on every wake-up."""
        waiter = _Waiter()
        with self._lock:
            self._by_mailbox.setdefault(mailbox_id, set()).add(waiter)
        try:
            yield waiter.event
        finally:
            with self._lock:
                group = self._by_mailbox.get(mailbox_id)
                if group is not None:
                    group.discard(waiter)
                    if not group:
                        del self._by_mailbox[mailbox_id]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._by_mailbox.values())

    def wake(self, mailbox_ids: Iterable[int] | None) -> None:
        """Wake the waiters of those mailboxes (``None``: every waiter). Any thread."""
        with self._lock:
            if mailbox_ids is None:
                targets = [w for group in self._by_mailbox.values() for w in group]
            else:
                targets = [w for i in set(mailbox_ids) for w in self._by_mailbox.get(i, ())]
        for waiter in targets:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
                waiter.loop.call_soon_threadsafe(waiter.event.set)


def format_ids(mailbox_ids: Iterable[int]) -> bytes:
    """A wake-up payload: ids separated by spaces, or ``*`` when they would not fit."""
    payload = " ".join(str(i) for i in sorted(set(mailbox_ids))).encode("ascii")
    return payload if len(payload) <= _MAX_PAYLOAD else _ALL


def parse_ids(payload: bytes | str) -> list[int] | None:
    """The ids of a payload; ``None`` (wake everyone) for ``*`` or anything unreadable."""
    if isinstance(payload, str):
        payload = payload.encode("ascii", "replace")
    try:
        return [int(part) for part in payload.split()] if payload.strip() != _ALL else None
    except ValueError:
        return None
