"""Hostile and broken IMAP input on SQLite: garbage, NUL octets, unbalanced parentheses, a
huge literal announcement, too many errors in a row, idle autologout and shutdown; another
session keeps working meanwhile."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.protocol.test_imap_support import PASSWORD, USER, Raw, connect, ok, simple, start
from tests.support import MailwingServer


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path) -> MailwingServer:
    return start(server_factory, tmp_path)


def login(r: Raw) -> None:
    assert r.command(f'l1 LOGIN {USER} "{PASSWORD}"'.encode())[-1].startswith(b"l1 OK")


def test_garbage_does_not_hurt_other_sessions(srv: MailwingServer) -> None:
    good = connect(srv)
    ok(good.select("INBOX"))
    r = Raw(srv.ports["imap"])
    login(r)
    assert r.command(b"g1 SELECT INBOX")[-1].startswith(b"g1 OK")
    assert r.command(b"g2 FROBNICATE")[-1].startswith(b"g2 BAD")
    assert r.command(b"g3 FETCH 1:* (FLAGS")[-1].startswith(b"g3 BAD")  # unbalanced
    assert r.command(b"g4 SEARCH (OR SEEN")[-1].startswith(b"g4 BAD")
    assert r.command(b"g5 NOOP\x00junk")[-1].startswith(b"g5 BAD")
    assert r.command(b"g6 FETCH 99 FLAGS")[-1].startswith(b"g6 BAD")  # no message 99
    assert r.command(b"g7 FETCH 1 (FLAGS BODY[9.HEADER.FOO])")[-1].startswith(b"g7 BAD")
    # a synchronising literal too large is refused before the client sends it
    lines = r.command(b"g8 APPEND INBOX {999999999999}")
    assert lines[-1].startswith(b"g8 NO [TOOBIG]") or lines[-1].startswith(b"g8 BAD")
    r.send(b"\xff\xfe\r\n")
    assert r.line().startswith(b"* BAD")  # no tag to answer with
    assert r.command(b"g9 NOOP")[-1] == b"g9 OK NOOP completed"
    ok(good.append("INBOX", "", None, simple("still fine")))
    ok(good.noop())
    assert good.untagged_responses["EXISTS"][-1] == b"1"
    r.close()
    good.logout()


def test_too_many_errors_closes(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, extra_config="[limits]\nmax_errors = 3\n")
    r = Raw(srv.ports["imap"])
    for i in range(2):
        assert r.command(b"x%d BLAH" % i)[-1].startswith(b"x%d BAD" % i)
    assert r.command(b"x9 NOOP")[-1].startswith(b"x9 OK")  # a success resets the count
    for i in range(2):
        r.command(b"y%d BLAH" % i)
    r.send(b"z BLAH\r\n")
    assert r.line().startswith(b"z BAD")
    assert r.line().startswith(b"* BYE")
    assert r.line() == b""
    r.close()


def test_autologout_and_shutdown(server_factory: type[MailwingServer], tmp_path: Path) -> None:
    srv = server_factory(root=tmp_path / "srv", enable=("imap",))
    text = srv.config_path.read_text().replace("[imap]\n", "[imap]\nidle_timeout = 1\n", 1)
    srv.config_path.write_text(text)
    srv.start()
    srv.add_user(USER, PASSWORD)
    r = Raw(srv.ports["imap"])
    assert r.line().startswith(b"* BYE Autologout")
    r.close()
    text = text.replace("idle_timeout = 1\n", "idle_timeout = 600\n")
    srv.config_path.write_text(text)
    srv.stop()
    srv.start()
    r = Raw(srv.ports["imap"])
    login(r)
    srv.stop(signal.SIGTERM)
    assert r.line().startswith(b"* BYE Server shutting down")
    r.close()
