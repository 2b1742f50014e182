"""IDLE (RFC 2177) and cross-session updates: changes made by ``mailwing deliver`` (another
process), by another session (STORE, EXPUNGE), and through another worker process
(``[server] workers = 2``) reach an idling client. Core cases run on both backends."""

from __future__ import annotations

import re
import time
from pathlib import Path

import imapclient
import pytest

from tests.protocol.test_imap_support import PASSWORD, USER, Raw, connect, ok, simple, start
from tests.support import MailwingServer

WAIT = 30  # upper bound for a push to arrive; the test passes as soon as it does


def idler(srv: MailwingServer) -> imapclient.IMAPClient:
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=60)
    client.login(USER, PASSWORD)
    client.select_folder("INBOX")
    client.idle()
    return client


def wait_for(client: imapclient.IMAPClient, wanted: bytes) -> list[tuple]:  # type: ignore[type-arg]
    """idle_check until a response containing ``wanted`` arrives (or WAIT passes)."""
    seen: list[tuple] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        got = client.idle_check(timeout=2)
        seen += got
        if any(wanted in item for item in got):
            return seen
    raise AssertionError(f"no {wanted!r} while idling; got {seen!r}")


def test_idle_sees_deliver_store_expunge(server_factory: type[MailwingServer], tmp_path: Path,
                                         database_url: str) -> None:
    srv = start(server_factory, tmp_path, database_url)
    srv.deliver(USER, simple("first"))
    client = idler(srv)
    srv.deliver(USER, simple("second"))  # another process
    assert (2, b"EXISTS") in wait_for(client, b"EXISTS")
    other = connect(srv)
    ok(other.select("INBOX"))
    ok(other.store("1", "+FLAGS", r"(\Flagged)"))
    got = wait_for(client, b"FETCH")
    assert any(item[0] == 1 and b"\\Flagged" in item[2][item[2].index(b"FLAGS") + 1]
               for item in got if item[1] == b"FETCH")
    ok(other.store("1", "+FLAGS", r"(\Deleted)"))
    ok(other.expunge())
    assert (1, b"EXPUNGE") in wait_for(client, b"EXPUNGE")
    client.idle_done()
    assert client.search("ALL") == [2]
    client.logout()
    other.logout()


def test_idle_across_workers(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    """Connections are spread over the two workers by the kernel (SO_REUSEPORT); we keep
    opening idling connections until the log shows logins served by both worker pids, then
    one change must reach every idler, whichever worker serves it."""
    srv = server_factory(root=tmp_path / "srv", enable=("imap",))
    text = srv.config_path.read_text().replace("[server]\n", "[server]\nworkers = 2\n", 1)
    srv.config_path.write_text(text)  # [server] is already written: add to it, not after
    srv.start()
    srv.add_user(USER, PASSWORD)
    idlers = []
    pids: set[str] = set()
    for _ in range(40):
        idlers.append(idler(srv))
        pids = set(re.findall(r"\[(\d+)\] mailwing\.session login ", srv.log_text()))
        if len(pids) >= 2 and len(idlers) >= 2:
            break
    assert len(pids) == 2, "the kernel never spread connections over both workers"
    writer = connect(srv)
    ok(writer.append("INBOX", "", None, simple("through one worker")))
    for client in idlers:
        assert (1, b"EXISTS") in wait_for(client, b"EXISTS")
        client.idle_done()
        client.logout()
    writer.logout()


def test_idle_done_and_bad_line(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path)
    client = idler(srv)
    text, _ = client.idle_done()
    assert b"IDLE completed" in text
    client.logout()
    r = Raw(srv.ports["imap"])
    r.command(f'i1 LOGIN {USER} "{PASSWORD}"'.encode())
    r.send(b"i2 IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    r.send(b"NOT DONE\r\n")
    assert r.until(b"i2")[-1].startswith(b"i2 BAD")
    assert r.command(b"i3 NOOP")[-1].startswith(b"i3 OK")
    r.close()


@pytest.mark.parametrize("command", [b"NOOP", b"CHECK"])
def test_updates_on_noop_and_check(server_factory: type[MailwingServer], tmp_path: Path,
                                   command: bytes) -> None:
    srv = start(server_factory, tmp_path)
    a, b = connect(srv), connect(srv)
    ok(a.select("INBOX"))
    ok(b.append("INBOX", "", None, simple("news")))
    typ, _ = a._simple_command(command.decode())
    assert typ == "OK" and a.untagged_responses["EXISTS"][-1] == b"1"
    a.logout()
    b.logout()
