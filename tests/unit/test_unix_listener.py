"""The LMTP socket file (``server.unix_listener``): its mode, a live one is never taken over,
a stale one is replaced, a deep folder works, and closing removes only our own file."""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

import pytest

from mailwing.server.unix_listener import bind_unix_socket
from mailwing.unixpath import socket_address


def test_mode_live_and_stale_sockets(tmp_path: Path) -> None:
    path = tmp_path / ("deep-" * 25) / "lmtp.sock"  # longer than sockaddr_un holds
    first = bind_unix_socket(path, 0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(OSError) as busy:
        bind_unix_socket(path, 0o600)  # a server accepts there: never taken over
    assert busy.value.errno == errno.EADDRINUSE
    with socket.socket(socket.AF_UNIX) as client, socket_address(path) as where:
        client.connect(where)  # and the first one still works
    first.sock.close()  # as a kill -9 leaves it: the file stays, nobody accepts
    assert path.exists()
    second = bind_unix_socket(path, 0o660)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    first.close()  # not its file any more: left alone
    assert path.exists()
    second.close()
    assert not path.exists()


def test_a_file_that_is_not_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"
    path.write_text("not a socket")
    with pytest.raises(OSError, match="not a socket"):
        bind_unix_socket(path, 0o660)
    assert path.read_text() == "not a socket"
