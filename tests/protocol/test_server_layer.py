"""The server layer: real ``mailwing serve`` processes, plus the listener API in-process.

Subprocess tests cover what only a real process shows (signals, workers, start-up refusals);
in-process tests register small handlers to check isolation, caps and logging precisely.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from mailwing.config import load_settings
from mailwing.server.connection import Connection
from mailwing.server.limits import REFUSALS
from mailwing.server.listeners import ListenerGroup
from mailwing.server.tls import ensure_self_signed
from mailwing.services.auth import Authenticator
from mailwing.services.context import AppContext
from tests.support import MailwingServer, free_port


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.settimeout(timeout)
    return s


def read_line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def wait_for(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- real processes -----------------------------------------------------------------------

def test_serve_refuses_outdated_schema(tmp_path: Path) -> None:
    srv = MailwingServer(root=tmp_path)
    r = srv.cli("serve", check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "mailwing db upgrade" in err and "Traceback" not in err


def test_serve_wrong_config_key_exit_2(tmp_path: Path) -> None:
    srv = MailwingServer(root=tmp_path, extra_config="[auth]\nmax_failures_per_ipp = 3\n")
    r = srv.cli("serve", check=False)
    assert r.returncode == 2
    assert "auth.max_failures_per_ipp" in r.stderr.decode()
    assert len(r.stderr.decode().strip().splitlines()) == 1


def test_serve_unreadable_certificate(tmp_path: Path) -> None:
    srv = MailwingServer(root=tmp_path, env={
        "MAILWING_TLS_CERT_FILE": str(tmp_path / "missing-cert.pem"),
        "MAILWING_TLS_KEY_FILE": str(tmp_path / "missing-key.pem")})
    srv.cli("db", "upgrade")
    r = srv.cli("serve", check=False)
    assert r.returncode == 1
    lines = r.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("mailwing: error:") and "missing-cert.pem" in lines[-1]
    assert "Traceback" not in r.stderr.decode()


def test_self_signed_certificate_generated_and_reused(server_factory: Any,
                                                      tmp_path: Path) -> None:
    from cryptography import x509

    srv = server_factory(root=tmp_path).start()
    cert_bytes = srv.cert_path.read_bytes()
    key_path = srv.cert_path.with_name("key.pem")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_bytes)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"mail.test", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert srv.stop() == 0
    srv.start()
    assert srv.cert_path.read_bytes() == cert_bytes


def test_sigterm_with_connected_client_exits_0(server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path).start()
    client = connect(srv.ports["pop3"])
    assert read_line(client).startswith(b"+OK")
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 8
    rest = client.recv(4096)  # a goodbye line or EOF, never a hang
    assert rest == b"" or rest.startswith(b"-ERR")
    client.close()
    assert re.search(r"session end .*result=(shutdown|closed)", srv.log_text())


def test_second_serve_on_same_data_folder_refused(server_factory: Any,
                                                  tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path).start()
    r = srv.cli("serve", check=False)
    assert r.returncode == 1
    assert "another mailwing serve" in r.stderr.decode()
    assert srv.stop() == 0


def test_connection_cap_per_ip(server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path,
                         env={"MAILWING_SERVER_MAX_CONNECTIONS_PER_IP": "2"}).start()
    wait_for(lambda: "ready" in srv.log_text())
    time.sleep(0.3)  # readiness probes of the fixture must be gone
    held = [connect(srv.ports["pop3"]) for _ in range(2)]
    for c in held:
        assert read_line(c).startswith(b"+OK")
    extra = connect(srv.ports["pop3"])
    assert read_line(extra) == REFUSALS["pop3"].encode()
    assert extra.recv(100) == b""
    for c in held:
        c.close()
    time.sleep(0.3)
    again = connect(srv.ports["pop3"])
    assert read_line(again).startswith(b"+OK")
    again.close()


def test_idle_timeout_closes_silent_connection(server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path, env={"MAILWING_POP3_IDLE_TIMEOUT": "1"}).start()
    client = connect(srv.ports["pop3"])
    assert read_line(client).startswith(b"+OK")
    started = time.monotonic()
    data = b""
    while chunk := client.recv(4096):
        data += chunk
    assert 0.8 < time.monotonic() - started < 5
    client.close()
    wait_for(lambda: "result=timeout" in srv.log_text())


def _worker_pids(text: str) -> set[int]:
    return {int(m) for m in re.findall(r"worker pid (\d+) ready", text)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_serve_and_stop(server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path, env={"MAILWING_SERVER_WORKERS": "2"}).start()
    wait_for(lambda: len(_worker_pids(srv.log_text())) == 2)
    pids = _worker_pids(srv.log_text())
    assert srv.proc is not None and srv.proc.pid not in pids
    for _ in range(4):
        c = connect(srv.ports["pop3"])
        assert read_line(c).startswith(b"+OK")
        c.close()
    assert srv.stop() == 0
    assert not any(_alive(p) for p in pids)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopted it, if anyone:
    in a container that may be no one)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rpartition(")")[2].split()[0] != "Z"


def test_workers_stop_when_the_parent_is_killed(server_factory: Any, tmp_path: Path) -> None:
    """A parent killed without a word (kill -9) takes its workers with it: orphans would
    keep the ports, and the next start could not bind them."""
    srv = server_factory(root=tmp_path, env={"MAILWING_SERVER_WORKERS": "2"}).start()
    wait_for(lambda: len(_worker_pids(srv.log_text())) == 2)
    pids = _worker_pids(srv.log_text())
    assert srv.proc is not None
    srv.proc.kill()
    srv.proc.wait()
    wait_for(lambda: not any(_running(p) for p in pids), timeout=20)
    srv.start()  # the ports are free again
    c = connect(srv.ports["pop3"])
    assert read_line(c).startswith(b"+OK")
    c.close()
    assert srv.stop() == 0


@pytest.mark.slow
def test_crashed_worker_is_replaced(server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path, env={"MAILWING_SERVER_WORKERS": "2"}).start()
    wait_for(lambda: len(_worker_pids(srv.log_text())) == 2)
    time.sleep(5.2)  # past the start-up window, so a death counts as a crash
    victim = min(_worker_pids(srv.log_text()))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(_worker_pids(srv.log_text())) == 3)
    c = connect(srv.ports["pop3"])
    assert read_line(c).startswith(b"+OK")
    c.close()
    assert srv.stop() == 0


# -- in-process: the listener API with small handlers --------------------------------------

async def echo(ctx: AppContext, conn: Connection) -> None:
    await conn.write(b"+OK hello\r\n")
    while True:
        data = await conn.read()
        conn.commands += 1
        if data.startswith(b"boom"):
            raise RuntimeError("handler bug")
        await conn.write(data)


@pytest.fixture
async def group(sqlite_store: Any, tmp_path: Path) -> Any:
    port = free_port()
    env = {f"MAILWING_{n.upper()}_PORT": "0" for n in
           ("smtp", "submission", "smtps", "pop3s", "imap", "imaps", "admin")}
    env.update({"MAILWING_POP3_PORT": str(port), "MAILWING_SMTP_PORT": str(free_port()),
                "MAILWING_SERVER_MAX_CONNECTIONS": "3",
                "MAILWING_SERVER_DATA_DIR": str(tmp_path)})
    settings = load_settings(environ=env)
    ctx = AppContext(settings, sqlite_store, Authenticator(sqlite_store, settings.auth))
    from mailwing.server.tls import build_server_context

    tls = build_server_context(*ensure_self_signed(tmp_path, "mail.test"))
    grp = ListenerGroup(ctx, {"pop3": echo}, tls)
    await grp.start()
    yield grp, port, settings
    await grp.shutdown(1.0)


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return reader, writer


async def test_handler_exception_is_isolated(group: Any, caplog: Any) -> None:
    _grp, port, _ = group
    caplog.set_level(logging.INFO)
    r1, w1 = await _open(port)
    r2, w2 = await _open(port)
    assert await r1.readline() == b"+OK hello\r\n"
    assert await r2.readline() == b"+OK hello\r\n"
    w1.write(b"boom\r\n")
    assert await r1.read() == b""  # that connection was closed
    w2.write(b"still here\r\n")
    assert await r2.readline() == b"still here\r\n"
    assert any("failed" in r.getMessage() and r.exc_info for r in caplog.records)
    ends = [r for r in caplog.records if r.getMessage() == "session end"]
    assert ends and ends[0].fields["result"] == "error"  # type: ignore[attr-defined]
    w2.close()


async def test_total_cap_and_unserved_protocol(group: Any) -> None:
    grp, port, settings = group
    assert [b[0] for b in grp.bound] == ["pop3"]  # smtp is enabled but has no handler
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", settings.smtp.port)
    conns = [await _open(port) for _ in range(3)]
    for r, _ in conns:
        assert await r.readline() == b"+OK hello\r\n"
    r, w = await _open(port)
    assert await r.readline() == REFUSALS["pop3"].encode()
    assert await r.read() == b""
    for _, w in conns:
        w.close()


async def test_shutdown_ends_waiting_sessions(group: Any) -> None:
    grp, port, _ = group
    r, _w = await _open(port)
    assert await r.readline() == b"+OK hello\r\n"
    await asyncio.sleep(0.05)
    assert len(grp.live) == 1
    await asyncio.wait_for(grp.shutdown(5.0), 3)
    assert await r.read() == b""
    assert grp.live == []
