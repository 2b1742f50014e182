"""The LMTP UNIX socket file: bound once, shared by every worker, removed at the end.

Why bound by the parent (:func:`mailwing.app.serve`) before the workers fork: a UNIX socket
path cannot be bound twice, as a TCP port can with ``SO_REUSEPORT``, so every worker
inherits the one listening socket and accepts on it (the kernel hands each connection to one
of them), and a worker restarted after a crash inherits it again. The embeddable server and
tests without a parent let :class:`~mailwing.server.listeners.ListenerGroup` bind it.

The file mode is set before ``listen``: until then a connection is refused, so no client
ever connects through a looser mode. A socket file left by a server that was killed is
replaced; one that still accepts connections belongs to a running server, and binding fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from pathlib import Path

from mailwing.unixpath import socket_address

__all__ = ["UnixSocket", "bind_unix_socket"]


class UnixSocket:
    """A bound, listening UNIX socket and the file it made (removed by :meth:`close`)."""

    def __init__(self, sock: socket.socket, path: Path, identity: tuple[int, int]) -> None:
        self.sock = sock
        self.path = path
        self.identity = identity  # (inode, ctime): inode numbers alone are reused at once

    def close(self) -> None:
        """Close the socket and remove its file, unless another server has replaced it."""
        self.sock.close()
        with contextlib.suppress(OSError):
            if _identity(self.path) == self.identity:
                os.unlink(self.path)


def _identity(path: Path) -> tuple[int, int]:
    found = os.stat(path)
    return found.st_ino, found.st_ctime_ns


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            with socket_address(path) as where:
                probe.connect(where)
        except OSError:
            return False
    return True


def bind_unix_socket(path: Path, mode: int, backlog: int = 128) -> UnixSocket:
    """Bind ``path`` with file mode ``mode`` and listen (non-blocking); OSError if the path
    is in use by a live server or is not a socket."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(found.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        if _answers(path):
            raise OSError(errno.EADDRINUSE, f"a server is already listening on {path}")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with socket_address(path) as where:
            sock.bind(where)
        os.chmod(path, mode)
        sock.listen(backlog)
        sock.setblocking(False)
        return UnixSocket(sock, path, _identity(path))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {path}: {exc.strerror}") from exc
