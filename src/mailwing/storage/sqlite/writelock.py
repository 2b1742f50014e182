"""A queue in the kernel for SQLite's write lock, shared by every process writing one database.

Why (issue #9): SQLite admits one writer per database file and has no queue for the others. A
writer that finds the lock taken retries: SQLite's busy handler sleeps 1, 2, 5, 10... ms
between tries, :meth:`~.executor.SqliteExecutor._begin_immediate` 0.2 ms growing to 2 ms. With
two worker processes writing all the time (flag changes, expunges, deliveries), measured on the
mixed IMAP load: a write batch waited 1.9 to 2.8 ms on average for ``BEGIN IMMEDIATE``, for a
lock that is held about 2 ms, so each wait overshot the release by a sleep, and the process
that happened to retry at the right moment could win several times in a row.

Here every writer first takes an exclusive ``flock`` on a file beside the database
(``<database>.writers``), and only then ``BEGIN IMMEDIATE``. The kernel puts the waiting
writers to sleep and wakes one as soon as the holder lets go: no sleep overshoots the release
and no CPU is spent retrying. SQLite's own lock still does the excluding; this only orders who
asks for it, so a writer that does not take the file lock (an older version, the ``sqlite3``
shell) is still safe, and is waited for by the retries as before.

Why the wait has no timeout, when ``BEGIN IMMEDIATE`` has ``busy_timeout``: the holder is a
database thread (or a one-shot command) running one batch: its scripts' statements, the commit
and the removal of content files the batch dropped, waiting for no event loop and no network,
so it lets go as soon as those are done, or when its own ``busy_timeout`` fails the batch; and
the kernel drops the lock of a process that dies, even by ``kill -9``. The one case where a
waiter now waits longer than before is a holder that is stopped (``SIGSTOP``, a debugger): it
holds SQLite's lock then too, so writes stop either way.

Each process opens the file itself (a lock taken through a descriptor inherited across ``fork``
would be shared with the parent, and exclude nothing). If the file cannot be opened (a
read-only folder), writers go without it: the retries still work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

__all__ = ["WriterQueue", "writers_path"]


def writers_path(database: Path) -> Path:
    """The lock file of ``database``."""
    return database.with_name(database.name + ".writers")


class WriterQueue:
    """The file lock of one database, for one thread of one process (not reentrant)."""

    def __init__(self, database: Path) -> None:
        self._path = writers_path(database)
        self._fd: int | None = None
        self._pid = 0
        #: Times the lock was taken; and, of those, the times another writer held it first.
        self.taken = 0
        self.waited = 0
        #: Seconds it was held, and the holding thread's CPU seconds meanwhile. Their ratio
        #: says whether a saturated lock is the holder's work or its waiting: in a worker
        #: process the holder is the writer thread, which also waits for a core and for the
        #: GIL (issue #9 found half of the held time off the CPU under the mixed IMAP load).
        self.held_seconds = 0.0
        self.held_cpu_seconds = 0.0
        self._since: tuple[float, float] | None = None  # (wall, thread CPU) when taken

    def acquire(self) -> bool:
        """Wait for the lock; False (and nothing held) when the file cannot be used."""
        fd = self._open()
        if fd is None:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.waited += 1
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            return False
        self.taken += 1
        self._since = (time.perf_counter(), time.thread_time())
        return True

    def release(self) -> None:
        """Let go (after a successful :meth:`acquire`, from the same thread)."""
        if self._since is not None:
            wall, cpu = self._since
            self._since = None
            self.held_seconds += time.perf_counter() - wall
            self.held_cpu_seconds += time.thread_time() - cpu
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            except OSError:
                self.close()  # closing the descriptor lets go of the lock too

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._pid == os.getpid():  # not a descriptor of the parent's, after fork
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _open(self) -> int | None:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        self._fd = None  # opened before a fork: the parent's, never used here
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        self._fd, self._pid = fd, os.getpid()
        return fd
