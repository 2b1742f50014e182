"""Sending change wake-ups to the other processes that share one SQLite database.

The sending half of :mod:`.notify` (read its docstring for the protocol: one Unix datagram
socket per listening process in ``<database>.notify/``, one datagram of mailbox ids per
commit). It is a module of its own, without ``asyncio``, because a process that only commits
and never waits, ``mailwing deliver`` above all (run once per message, issue #9), needs just
this part.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mailwing.storage.notify import format_ids

if TYPE_CHECKING:
    import socket

__all__ = ["Broadcaster", "NotifyDirectory", "notify_dir"]

_MAX_PATH = 100


def notify_dir(database: Path) -> Path:
    return database.with_name(database.name + ".notify")


class NotifyDirectory:
    """The notify directory and how to address a socket in it.

    Unix socket paths are limited to about 107 bytes; for a deeper data folder the sockets
    are addressed through ``/proc/self/fd/<dirfd>/`` (Linux), which stays short."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def address(self, name: str) -> str:
        full = str(self.path / name)
        if len(full.encode()) <= _MAX_PATH:
            return full
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        return f"/proc/self/fd/{self._fd}/{name}"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Broadcaster:
    """Sends one datagram per commit to every socket in the directory except ``own``.

    Sending never blocks: a full receive queue drops the datagram (the waiter's periodic
    re-check catches up); a socket whose owner is dead (``ECONNREFUSED``) is removed. Used
    from one thread (the database thread, or the only thread of a one-shot command)."""

    def __init__(self, directory: Path) -> None:
        self._dir = NotifyDirectory(directory)
        self._sender: socket.socket | None = None
        #: This process's own socket name, skipped when sending (it is woken directly).
        self.own: str | None = None

    @property
    def path(self) -> Path:
        return self._dir.path

    def send(self, mailbox_ids: set[int]) -> None:
        try:
            names = [e.name for e in os.scandir(self._dir.path) if e.name != self.own]
        except OSError:
            return  # no process has ever waited here
        if not names:
            return
        if self._sender is None:
            import socket  # only when someone listens: a delivery nobody waits for skips it

            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        payload = format_ids(mailbox_ids)
        for name in names:
            try:
                self._sender.sendto(payload, self._dir.address(name))
            except ConnectionRefusedError:  # nobody reads it: its process is gone
                with contextlib.suppress(OSError):
                    os.unlink(self._dir.path / name)
            except OSError:
                pass  # vanished meanwhile, queue full, not a socket: the re-check covers it

    def close(self) -> None:
        """Called once nothing sends any more (the database thread has stopped)."""
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        self._dir.close()
