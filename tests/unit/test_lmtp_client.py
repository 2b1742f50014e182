"""``mailwing deliver``'s LMTP client: reply -> exit code, and giving up (for the direct path)
only while no byte of the message has been read, against a scripted server."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwing.cli.lmtp_client import (
    LmtpUnavailable,
    _envelope,
    deliver_over_lmtp,
    exit_code,
)
from mailwing.unixpath import socket_address


@pytest.mark.parametrize(("code", "enhanced", "wanted"), [
    (250, "2.0.0", 0), (451, "4.3.0", 75), (452, "4.5.3", 75), (550, "5.1.1", 67),
    (501, "5.1.3", 67), (550, "5.2.0", 73), (552, "5.2.2", 77), (554, "5.6.0", 65),
    (550, "5.6.0", 65), (552, "5.3.4", 65), (503, "5.5.1", 75), (554, "", 75),
])
def test_reply_to_exit_code(code: int, enhanced: str, wanted: int) -> None:
    assert exit_code(code, enhanced) == wanted


def test_sender_is_qualified_as_the_direct_path_does() -> None:
    assert _envelope(None, "mail.test") == "<>"
    assert _envelope("<>", "mail.test") == "<>"
    assert _envelope("alice", "mail.test") == "<alice@mail.test>"
    assert _envelope("<a@b.test>", "mail.test") == "<a@b.test>"


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[Path, list[bytes], list[bytes]]]:
    """A one-connection server on a UNIX socket: answers each line it reads with the next
    scripted reply; what it read is kept. Fill ``replies`` before connecting."""
    path = tmp_path / "s" / ("deep-" * 30) / "lmtp.sock"  # past sockaddr_un's 108 octets
    path.parent.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX)
    with socket_address(path) as where:
        listener.bind(where)
    listener.listen(1)
    replies: list[bytes] = []
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(replies.pop(0))
            while replies:
                line = lines.readline()
                if not line:
                    return
                seen.append(line)
                conn.sendall(replies.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, replies, seen
    listener.close()
    thread.join(5)


def test_refused_sender_falls_back_before_reading_the_message(
        scripted: tuple[Path, list[bytes], list[bytes]]) -> None:
    path, replies, seen = scripted
    replies += [b"220 x LMTP\r\n", b"250-x\r\n250 CHUNKING\r\n", b"501 5.1.7 bad sender\r\n",
                b"250 2.1.5 ok\r\n"]
    stdin = io.BytesIO(b"Subject: x\r\n\r\nbody\r\n")
    with pytest.raises(LmtpUnavailable):
        deliver_over_lmtp(path, "a@b.test", stdin, sender="weird", mailbox=None,
                          hostname="mail.test")
    assert stdin.tell() == 0  # the direct path still has the whole message
    assert seen[1] == b"MAIL FROM:<weird@mail.test> BODY=BINARYMIME\r\n"


def test_no_xmailbox_keyword_falls_back_for_mailbox(
        scripted: tuple[Path, list[bytes], list[bytes]]) -> None:
    path, replies, _ = scripted
    replies += [b"220 x LMTP\r\n", b"250-x\r\n250 CHUNKING\r\n"]
    stdin = io.BytesIO(b"x\r\n")
    with pytest.raises(LmtpUnavailable):
        deliver_over_lmtp(path, "a@b.test", stdin, sender=None, mailbox="Archive",
                          hostname="mail.test")
    assert stdin.tell() == 0


def test_message_sent_as_bdat_chunks_and_reply_mapped(
        scripted: tuple[Path, list[bytes], list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailwing.cli.lmtp_client as client

    monkeypatch.setattr(client, "CHUNK", 4)
    path, replies, seen = scripted
    replies += [b"220 x LMTP\r\n", b"250-x\r\n250-CHUNKING\r\n250 XMAILBOX\r\n",
                b"250 2.1.0 ok\r\n", b"250 2.1.5 ok\r\n", b"250 2.0.0 4 octets\r\n",
                b"552 5.2.2 <a@b.test> over quota\r\n", b"221 2.0.0 bye\r\n"]
    code, message = deliver_over_lmtp(path, "a@b.test", io.BytesIO(b"abcdefg"), sender=None,
                                      mailbox="Lists/Py thon", hostname="mail.test")
    assert (code, message) == (77, "<a@b.test> over quota")
    assert seen[2] == b"RCPT TO:<a@b.test> XMAILBOX=Lists/Py+20thon\r\n"
    assert seen[3] == b"BDAT 4\r\n"
    assert seen[4] == b"abcdBDAT 3 LAST\r\n"  # the chunk's octets, then the last chunk
    assert seen[5] == b"efgQUIT\r\n"


def test_no_socket_or_nobody_accepting_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(LmtpUnavailable):
        deliver_over_lmtp(tmp_path / "none.sock", "a@b.test", io.BytesIO(b"x"), sender=None,
                          mailbox=None, hostname="mail.test")
    bound = socket.socket(socket.AF_UNIX)
    bound.bind(str(tmp_path / "stale.sock"))  # bound, not listening: refused
    try:
        with pytest.raises(LmtpUnavailable):
            deliver_over_lmtp(tmp_path / "stale.sock", "a@b.test", io.BytesIO(b"x"),
                              sender=None, mailbox=None, hostname="mail.test")
    finally:
        bound.close()
