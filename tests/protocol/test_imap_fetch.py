"""FETCH items on SQLite (RFC 3501 6.4.5, 7.4.2): a multipart sample against hand-checked
BODYSTRUCTURE/BODY/ENVELOPE, sections, partials, \\Seen rules, and a large bare-LF message
streamed as a CRLF literal of exactly RFC822.SIZE octets."""

from __future__ import annotations

from pathlib import Path

import imapclient
import pytest

from tests.protocol.test_imap_support import (
    MULTIPART,
    PASSWORD,
    USER,
    connect,
    ok,
    simple,
    start,
)
from tests.support import MailwingServer

BODYSTRUCTURE = (
    b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 11 0 NIL NIL NIL NIL) '
    b'("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 8 NIL '
    b'("ATTACHMENT" ("FILENAME" "a.bin")) NIL NIL) "MIXED" ("BOUNDARY" "XYZ") NIL NIL NIL)'
)
BODY = (b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 11 0) '
        b'("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 8) "MIXED")')
ENVELOPE = (
    b'("Fri, 02 Jan 2026 10:00:00 +0100" "multipart test" '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'((NIL NIL "bob" "example.test") ("Carol" NIL "carol" "example.test")) '
    b'NIL NIL NIL "<m1@example.test>")'
)


@pytest.fixture
def srv(server_factory: type[MailwingServer], tmp_path: Path) -> MailwingServer:
    return start(server_factory, tmp_path)


def test_multipart_structure_envelope_sections(srv: MailwingServer) -> None:
    c = connect(srv)
    ok(c.append("INBOX", "", None, MULTIPART))
    ok(c.select("INBOX"))
    assert ok(c.fetch("1", "(BODYSTRUCTURE)")) == [b"1 (BODYSTRUCTURE " + BODYSTRUCTURE + b")"]
    assert ok(c.fetch("1", "(BODY)")) == [b"1 (BODY " + BODY + b")"]
    assert ok(c.fetch("1", "(ENVELOPE)")) == [b"1 (ENVELOPE " + ENVELOPE + b")"]
    # asked again: served from the cache, same bytes
    assert ok(c.fetch("1", "(ENVELOPE)")) == [b"1 (ENVELOPE " + ENVELOPE + b")"]

    def section(spec: str) -> bytes:
        data = ok(c.fetch("1", f"(BODY.PEEK[{spec}])"))
        return data[0][1] if isinstance(data[0], tuple) else data[0]

    assert section("1") == b"Hello plain"
    assert section("2") == b"AAECAw=="
    assert section("2.MIME").startswith(b"Content-Type: application/octet-stream")
    assert section("HEADER.FIELDS (Subject)") == b"Subject: multipart test\r\n\r\n"
    assert section("HEADER.FIELDS.NOT (To From Date Message-ID MIME-Version Content-Type)") \
        == b"Subject: multipart test\r\n\r\n"
    assert section("") == MULTIPART
    assert section("3") == b'1 (BODY[3] "")'  # a part that does not exist is empty
    data = ok(c.fetch("1", "(BODY.PEEK[]<10.20>)"))
    assert data[0] == (b"1 (BODY[]<10> {20}", MULTIPART[10:30])
    data = ok(c.fetch("1", "(RFC822.HEADER)"))
    assert data[0][1] == MULTIPART[:MULTIPART.index(b"\r\n\r\n") + 4]
    assert b"Seen" not in ok(c.fetch("1", "(FLAGS)"))[0]  # RFC822.HEADER is a peek
    data = ok(c.fetch("1", "(RFC822.TEXT)"))
    assert data[0][1] == MULTIPART[MULTIPART.index(b"\r\n\r\n") + 4:]
    assert b"\\Seen" in data[1]
    c.logout()


def test_large_message_streamed_with_crlf(srv: MailwingServer) -> None:
    line = b"x" * 70 + b"\n"
    message = b"Subject: big\nFrom: bob@example.test\n\n" + line * 12_000  # ~850 kB, bare LF
    srv.deliver(USER, message)
    c = connect(srv)
    ok(c.select("INBOX"))
    size = int(ok(c.fetch("1", "(RFC822.SIZE)"))[0].split()[-1].rstrip(b")"))
    data = ok(c.fetch("1", "(BODY.PEEK[])"))
    body = data[0][1]
    assert len(body) == size
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert body.endswith(b"Subject: big\r\nFrom: bob@example.test\r\n\r\n" + line.replace(
        b"\n", b"\r\n") * 12_000)
    data = ok(c.fetch("1", "(BODY.PEEK[]<100000.500>)"))
    assert data[0] == (b"1 (BODY[]<100000> {500}", body[100_000:100_500])
    data = ok(c.fetch("1", "(RFC822)"))
    assert data[0][1] == body and b"\\Seen" in data[1]
    c.logout()


def test_imapclient_fetch_many(srv: MailwingServer) -> None:
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30)
    client.login(USER, PASSWORD)
    for i in range(30):
        client.append("INBOX", simple(f"message {i}"))
    client.select_folder("INBOX")
    got = client.fetch(client.search("ALL"), ["FLAGS", "ENVELOPE", "RFC822.SIZE"])
    assert sorted(got) == list(range(1, 31))  # UIDs
    assert got[8][b"ENVELOPE"].subject == b"message 7"
    assert got[8][b"RFC822.SIZE"] == len(simple("message 7"))
    got = client.fetch([3], ["BODY[]"])
    assert got[3][b"BODY[]"] == simple("message 2")
    assert imapclient.SEEN in client.get_flags([3])[3]
    client.logout()


def test_fetch_all_bodies_in_batches(srv: MailwingServer) -> None:
    """FETCH 1:* BODY.PEEK[] reads small bodies in batches (one storage read per batch):
    every body still comes back exactly, bare-LF ones in CRLF form, a streamed large one
    in between, and a message expunged by another session (content gone, EXPUNGE not yet
    allowed) is left out while the others are answered."""
    client = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30)
    client.login(USER, PASSWORD)
    bodies = [simple(f"batch message {i}") for i in range(40)]
    bodies[7] = bodies[7].replace(b"\r\n", b"\n")
    bodies[20] = simple("large") + (b"y" * 78 + b"\r\n") * 5000  # over STREAM_OVER
    for body in bodies:
        client.append("INBOX", body)
    client.select_folder("INBOX")
    got = client.fetch(list(range(1, 41)), ["BODY.PEEK[]"])
    assert [got[uid][b"BODY[]"] for uid in sorted(got)] == [
        b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for b in bodies]
    # several items per message: the batch (one preload for all) answers exactly what one
    # message at a time (no preload) does
    wanted = ["BODY.PEEK[]", "BODY.PEEK[TEXT]", "BODY.PEEK[]<0.10>", "BODY.PEEK[HEADER]",
              "RFC822.SIZE", "FLAGS", "ENVELOPE", "BINARY.PEEK[1]"]
    together = client.fetch(list(range(1, 41)), wanted)
    for uid in (1, 8, 21, 40):
        assert together[uid] == client.fetch([uid], wanted)[uid]
    other = imapclient.IMAPClient("127.0.0.1", port=srv.ports["imap"], ssl=False, timeout=30)
    other.login(USER, PASSWORD)
    other.select_folder("INBOX")
    other.delete_messages([13])
    other.expunge()
    other.logout()
    got = client.fetch(list(range(1, 41)), ["BODY.PEEK[]"])
    assert sorted(got) == [uid for uid in range(1, 41) if uid != 13]
    assert got[14][b"BODY[]"] == bodies[13]
    client.logout()
