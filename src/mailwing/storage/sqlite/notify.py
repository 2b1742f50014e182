"""Change wake-ups between processes that share one SQLite database (workers, ``mailwing
deliver``, admin commands), for ``Storage.wait_for_change`` (IMAP IDLE, RFC 2177).

SQLite has no LISTEN/NOTIFY, so the processes use a directory beside the database file,
``<database>.notify/`` (one per database, so two databases in one folder do not wake each
other). A process that has waiters binds one Unix datagram socket there, named
``<pid>.<random>``, read by its event loop. After every commit that raised some mailboxes'
HIGHESTMODSEQ, the committing process (any process, the short-lived CLI included) wakes its
own waiters directly and sends one datagram with the mailbox ids (``"3 17"``; ``"*"`` for
"everything") to every other socket in the directory. Sending never blocks: a full receive
queue drops the datagram (the waiter's periodic re-check catches up); a socket whose owner is
dead (``ECONNREFUSED``) is removed.

Unix socket paths are limited to about 107 bytes; for a deeper data folder the sockets are
addressed through ``/proc/self/fd/<dirfd>/`` (Linux), which stays short.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from pathlib import Path

from mailwing.storage.notify import ChangeWaiters, parse_ids
from mailwing.storage.sqlite.broadcast import Broadcaster, NotifyDirectory, notify_dir

__all__ = ["LocalNotifier", "notify_dir"]

_RECV_SIZE = 8192


class LocalNotifier:
    """Receives wake-ups for this process's waiters and broadcasts this process's commits.

    :meth:`listen` and :meth:`close` run on the event loop; :meth:`broadcast` runs in the
    database thread (it is the runner's ``on_change``); sending is :mod:`.broadcast`'s."""

    def __init__(self, directory: Path, waiters: ChangeWaiters) -> None:
        self._dir = NotifyDirectory(directory)
        self._broadcaster = Broadcaster(directory)  # its own fd: the database thread uses it
        self._waiters = waiters
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._name: str | None = None

    # -- receiving (event loop) -------------------------------------------------------------
    def listen(self) -> None:
        """Bind this process's socket (idempotent); raises OSError if the folder is unusable."""
        if self._sock is not None:
            return
        self._dir.path.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}.{secrets.token_hex(4)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(self._dir.address(name))
            loop = asyncio.get_running_loop()
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop, self._name = sock, loop, name
        self._broadcaster.own = name

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                payload = self._sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._waiters.wake(None)
                return
            self._waiters.wake(parse_ids(payload))

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            with contextlib.suppress(OSError):
                os.unlink(self._dir.path / str(self._name))
            sock.close()
        self._dir.close()

    # -- sending (database thread) ----------------------------------------------------------
    def broadcast(self, mailbox_ids: set[int]) -> None:
        self._waiters.wake(mailbox_ids)
        self._broadcaster.send(mailbox_ids)

    def close_sender(self) -> None:
        """Called once the database thread has stopped."""
        self._broadcaster.close()
