"""A path the kernel accepts for a UNIX socket, however deep its folder.

Why: ``sockaddr_un`` holds 108 octets, and the LMTP socket lives in the data folder, which
may be deeper than that (a test's temporary folder often is). Binding or connecting through
``/proc/self/fd/N/<name>``, with N a descriptor of the folder, reaches the same file with a
short name (Linux). Imports only :mod:`os`: ``mailwing deliver`` uses it on every message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MAX_SUN_PATH", "socket_address"]

MAX_SUN_PATH = 100  # octets; the kernel's limit is 107 plus the terminating NUL


@contextmanager
def socket_address(path: str | os.PathLike[str]) -> Iterator[str]:
    """The address to bind or connect ``path`` with, valid inside the ``with`` block."""
    text = os.fspath(path)
    if len(os.fsencode(text)) <= MAX_SUN_PATH:
        yield text
        return
    folder, name = os.path.split(os.path.abspath(text))
    fd = os.open(folder or "/", os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)
