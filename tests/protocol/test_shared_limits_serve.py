"""Limits shared by the workers of one node: ``mailwing serve`` with two worker processes on
SQLite (node shared memory). The kernel spreads connections over the workers (SO_REUSEPORT),
so per-worker counting would let through up to twice the limit; shared counting never."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.support import MailwingServer

CONFIG = """
[server]
workers = 2
max_connections_per_ip = 4
[auth]
max_failures_per_ip = 6
failure_delay = 0.0
"""


def pop3(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(10)
    return s


def test_failures_and_connections_counted_across_workers(
        server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path / "srv", database_url=f"sqlite:///{tmp_path / 'm.db'}",
                         enable=("pop3",), extra_config=CONFIG).start()
    srv.add_user("a@example.org", "right-pw")
    time.sleep(1.0)  # both workers are up (the port answered for at least one)
    port = srv.ports["pop3"]

    def login(password: str) -> bytes:
        s = pop3(port)
        s.recv(512)
        s.sendall(b"USER a@example.org\r\n")
        s.recv(512)
        s.sendall(f"PASS {password}\r\n".encode())
        reply = s.recv(512)
        s.close()
        return reply

    assert login("right-pw").startswith(b"+OK")
    for _ in range(6):
        assert login("wrong").startswith(b"-ERR")
    for _ in range(4):  # whichever worker answers: the IP's 6 failures are known to it
        assert login("right-pw").startswith(b"-ERR")

    time.sleep(1.0)  # the sessions above have ended on the server's side too
    held = [pop3(port) for _ in range(4)]
    for s in held:
        assert s.recv(512).startswith(b"+OK")
    for _ in range(4):
        extra = pop3(port)
        assert extra.recv(512).startswith(b"-ERR [SYS/TEMP] too many connections")
        extra.close()
    for s in held:
        s.close()
    assert "limits shared through memory" in srv.log_text()


def test_admin_token_failures_counted_across_workers(server_factory: type[MailwingServer],
                                                     tmp_path: Path) -> None:
    """Failed admin tokens on a 2-worker server: new connections each time (so both workers
    answer some), and the limit of 3 holds for the IP whichever worker answers next. Mail
    logins from the same IP are counted apart and still work."""
    import httpx

    from tests.adminkit import start_admin

    srv, token = start_admin(server_factory, tmp_path / "adm", enable=("admin", "pop3"),
                             extra="[server]\nworkers = 2\n[auth]\nmax_failures_per_ip = 3\n"
                                   "failure_delay = 0\n")
    srv.add_user("a@example.org", "right-pw")
    time.sleep(1.0)
    url = f"http://127.0.0.1:{srv.ports['admin']}/api/v1/status"

    def get(auth: str) -> int:
        with httpx.Client(timeout=30) as c:  # a new connection per request
            return c.get(url, headers={"Authorization": f"Bearer {auth}"}).status_code

    assert [get("mwa_x") for _ in range(3)] == [401] * 3
    assert [get(token) for _ in range(6)] == [429] * 6
    s = pop3(srv.ports["pop3"])
    s.recv(512)
    s.sendall(b"USER a@example.org\r\nPASS right-pw\r\n")
    reply = b""
    while reply.count(b"\r\n") < 2:
        reply += s.recv(512)
    assert reply.split(b"\r\n")[1].startswith(b"+OK")
    s.close()
