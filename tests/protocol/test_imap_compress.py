"""COMPRESS=DEFLATE (RFC 4978) over real sockets: raw DEFLATE both ways after the tagged OK,
on a plain connection, after STARTTLS and on IMAPS; a large streamed FETCH through it; once
per connection (``NO [COMPRESSIONACTIVE]``); refused before login and for other mechanisms."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.protocol.imap_wire_client import WireClient, lit
from tests.protocol.test_imap_support import PASSWORD, USER, start, tls_context
from tests.support import MailwingServer


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path,
        database_url: str) -> MailwingServer:
    return start(server_factory, tmp_path, database_url)


def _exercise(w: WireClient) -> None:
    """Everything below runs compressed; a 400 KB message is streamed (not held whole)."""
    done = w.command("C", b"COMPRESS DEFLATE")
    assert done == [b"C OK DEFLATE active"], done
    w.compress()
    assert w.command("N", b"NOOP") == [b"N OK NOOP completed"]
    line = b"compressible line of text, " * 3 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * (400_000 // len(line))
    assert w.command("A", b"APPEND INBOX " + lit(big))[-1].startswith(b"A OK")
    assert b"* 1 EXISTS" in w.command("S", b"SELECT INBOX")
    before = w.wire_in
    got = w.command("F", b"FETCH 1 BODY.PEEK[]")
    assert got[0] == b"* 1 FETCH (BODY[] {%d}\r\n" % len(big) + big + b")"
    assert w.wire_in - before < len(big) // 20  # it really is compressed
    caps = w.command("K", b"CAPABILITY")[0]
    assert b"COMPRESS=DEFLATE" not in caps and b"IMAP4rev1" in caps
    again = w.command("C", b"COMPRESS DEFLATE")
    assert again[-1].startswith(b"C NO [COMPRESSIONACTIVE]"), again
    bye = w.command("L", b"LOGOUT")
    assert bye[0].startswith(b"* BYE") and bye[-1].startswith(b"L OK")


def test_compress_plain(srv: MailwingServer) -> None:
    w = WireClient(srv.ports["imap"])
    assert b"COMPRESS=DEFLATE" in w.greeting
    assert w.command("C", b"COMPRESS DEFLATE")[-1].startswith(b"C BAD")  # not logged in
    w.login(USER, PASSWORD)
    assert w.command("C", b"COMPRESS GZIP")[-1].startswith(b"C NO")
    assert w.command("C", b"COMPRESS")[-1].startswith(b"C BAD")
    _exercise(w)
    w.close()


def test_compress_after_starttls(srv: MailwingServer) -> None:
    w = WireClient(srv.ports["imap"])
    w.starttls(tls_context(srv))
    w.login(USER, PASSWORD)
    _exercise(w)
    w.close()


def test_compress_on_imaps(srv: MailwingServer) -> None:
    w = WireClient(srv.ports["imaps"], tls=tls_context(srv))
    w.login(USER, PASSWORD)
    _exercise(w)
    w.close()


def test_garbage_after_compress_closes_cleanly(srv: MailwingServer) -> None:
    w = WireClient(srv.ports["imap"])
    w.login(USER, PASSWORD)
    assert w.command("C", b"COMPRESS DEFLATE") == [b"C OK DEFLATE active"]
    w.sock.sendall(b"\xff" * 64 + b"X NOOP\r\n")  # not DEFLATE data
    w.sock.settimeout(10)
    assert w.sock.recv(100) == b""  # the server drops the connection, no crash
    w.close()
    # and keeps serving others
    v = WireClient(srv.ports["imap"])
    v.login(USER, PASSWORD)
    v.close()
