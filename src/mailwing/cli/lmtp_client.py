"""``mailwing deliver``'s way through the running server: one message over the LMTP socket.

Why: an MTA runs ``mailwing deliver`` once per message (issue #9: <= 60 ms). Opening the
storage costs the PostgreSQL path ``asyncio``, ``asyncpg`` and a connection per message; the
server has them open already. This client speaks just enough LMTP (RFC 2033) to hand it the
message, and imports only :mod:`os` and the C socket module (``_socket``: the :mod:`socket`
wrapper builds its enums at import, a few milliseconds per message for nothing used here).

The conversation, for one recipient: LHLO; MAIL FROM (the ``--from`` sender, qualified with
the server's hostname as the direct path does, ``<>`` without one) and RCPT TO (with
``XMAILBOX=<xtext>`` for ``--mailbox``), pipelined; then the message as BDAT chunks
(RFC 3030), sent as it is read, exactly as its bytes are (no dot-stuffing, no line-ending
rules: the direct path stores standard input unchanged, so this does too); QUIT.

Until the first byte of the message is sent nothing is lost by giving up, so everything
that goes wrong before (no socket, refused, no greeting in time, a sender the LMTP parser
refuses, a server without XMAILBOX) raises :class:`LmtpUnavailable` and the caller delivers
directly. So does a message larger than the server's ``SIZE``: the listener bounds what it
takes (``limits.max_message_size``), the direct path does not, and a message must not
bounce just because a server happens to be running. The client therefore reads up to that
size before sending anything; a message that turns out bigger is handed to the direct path
with the octets already read (:attr:`LmtpUnavailable.consumed`). Once the message is on
its way, a failure is a temporary one (75):
the MTA keeps the message and retries. Replies map to the direct path's sysexits codes
(:func:`exit_code`).
"""

from __future__ import annotations

import _socket
import os
from collections.abc import Callable
from typing import BinaryIO

from mailwing.unixpath import socket_address

__all__ = ["LmtpUnavailable", "deliver_over_lmtp", "exit_code", "xtext"]

EX_DATAERR = 65
EX_NOUSER = 67
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77

CHUNK = 256 * 1024
#: Waits before the message is sent: past one, the direct path is tried instead.
SETUP_TIMEOUT = 30.0
#: Waits once the message is on its way (RFC 5321 section 4.5.3.2 suggests minutes).
BODY_TIMEOUT = 600.0
MAX_REPLY = 64 * 1024


class LmtpUnavailable(Exception):
    """No server took the message and nothing of it was sent: deliver directly, starting
    with ``consumed`` (what was read from standard input already, if anything)."""

    def __init__(self, reason: str, consumed: bytes = b"") -> None:
        super().__init__(reason)
        self.consumed = consumed


def _size_limit(keywords: list[str]) -> int:
    """The LHLO reply's ``SIZE n`` (RFC 1870); 0 when absent or unlimited."""
    for keyword in keywords:
        name, _, value = keyword.partition(" ")
        if name.upper() == "SIZE" and value.strip().isdigit():
            return int(value)
    return 0


def _read_at_most(stdin: BinaryIO, count: int) -> bytes:
    parts: list[bytes] = []
    while count > 0 and (part := stdin.read(min(count, CHUNK))):
        parts.append(part)
        count -= len(part)
    return b"".join(parts)


class _Reply:
    __slots__ = ("code", "enhanced", "lines")

    def __init__(self, code: int, enhanced: str, lines: list[str]) -> None:
        self.code = code
        self.enhanced = enhanced
        self.lines = lines

    @property
    def text(self) -> str:
        """The reason, as the direct path would print it (the server words it alike)."""
        return self.lines[-1] if self.lines else str(self.code)


def exit_code(code: int, enhanced: str) -> int:
    """The sysexits code ``mailwing deliver``'s direct path gives for the same outcome."""
    if code < 400:
        return 0
    if code < 500:
        return EX_TEMPFAIL
    if enhanced.startswith("5.1."):
        return EX_NOUSER  # no such user, or not an address at all
    if enhanced == "5.2.2":
        return EX_NOPERM  # over quota
    if enhanced.startswith("5.2."):
        return EX_CANTCREAT  # no such mailbox
    if enhanced.startswith("5.6.") or enhanced == "5.3.4":
        return EX_DATAERR  # empty, malformed or too big
    return EX_TEMPFAIL  # an answer this client does not know: let the MTA retry


def xtext(text: str) -> str:
    """RFC 3461 section 4: UTF-8 octets, ``+XX`` for ``+``, ``=`` and non-printables."""
    return "".join(chr(b) if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D) else f"+{b:02X}"
                   for b in text.encode("utf-8"))


class _Conversation:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> _Reply:
        lines: list[str] = []
        code = 0
        while True:
            end = self.buffer.find(b"\r\n")
            while end < 0:
                if len(self.buffer) > MAX_REPLY:
                    raise OSError("reply line too long")
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.buffer += data
                end = self.buffer.find(b"\r\n")
            line = self.buffer[:end].decode("utf-8", "replace")
            self.buffer = self.buffer[end + 2:]
            if len(line) < 3 or not line[:3].isdigit():
                raise OSError(f"not an LMTP reply: {line[:80]!r}")
            code = int(line[:3])
            lines.append(line[4:])
            if line[3:4] != "-":
                break
        first, _, _ = lines[-1].partition(" ")
        enhanced = first if first[:1] in "245" and first.count(".") == 2 else ""
        if enhanced:
            lines[-1] = lines[-1][len(enhanced) + 1:]
        return _Reply(code, enhanced, lines)


def _connect(path: str | os.PathLike[str]) -> _Conversation:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(SETUP_TIMEOUT)
        with socket_address(path) as where:
            sock.connect(where)
    except OSError as exc:
        sock.close()
        raise LmtpUnavailable(f"cannot connect to {os.fspath(path)}: {exc}") from exc
    return _Conversation(sock)


def _envelope(sender: str | None, hostname: str) -> str:
    """MAIL FROM's path for ``--from``, as ``services.delivery`` would qualify it."""
    if not sender or sender.strip() in ("", "<>"):
        return "<>"
    path = sender.strip().removeprefix("<").removesuffix(">")
    if path and "@" not in path:
        path = f"{path}@{hostname}"
    return f"<{path}>"


def deliver_over_lmtp(path: str | os.PathLike[str], address: str, stdin: BinaryIO, *,
                      sender: str | None, mailbox: str | None, hostname: str
                      ) -> tuple[int, str]:
    """Deliver standard input to ``address`` through the LMTP socket at ``path``: the exit
    code and a one-line message. Raises :class:`LmtpUnavailable` when the direct path
    should be taken instead (nothing was read from ``stdin`` then)."""
    talk = _connect(path)
    try:
        return _converse(talk, address, stdin, sender=sender, mailbox=mailbox,
                         hostname=hostname)
    finally:
        talk.sock.close()


def _converse(talk: _Conversation, address: str, stdin: BinaryIO, *, sender: str | None,
              mailbox: str | None, hostname: str) -> tuple[int, str]:
    try:
        greeting = talk.reply()
        if greeting.code != 220:
            raise LmtpUnavailable(f"server greeting: {greeting.text}")
        talk.send(b"LHLO localhost\r\n")
        lhlo = talk.reply()
        keywords = {line.split(" ", 1)[0].upper() for line in lhlo.lines[1:]}
        limit = _size_limit(lhlo.lines[1:])
        if lhlo.code != 250 or "CHUNKING" not in keywords or (
                mailbox is not None and "XMAILBOX" not in keywords):
            raise LmtpUnavailable(f"server does not offer what is needed: {lhlo.text}")
        envelope = _envelope(sender, hostname)
        utf8 = " SMTPUTF8" if not (envelope + address).isascii() else ""
        rcpt = f"RCPT TO:<{address}>" + (f" XMAILBOX={xtext(mailbox)}" if mailbox else "")
        talk.send(f"MAIL FROM:{envelope} BODY=BINARYMIME{utf8}\r\n{rcpt}\r\n".encode())
        mail = talk.reply()
        answer = talk.reply()
        if mail.code != 250:
            raise LmtpUnavailable(f"sender refused: {mail.text}")
        if answer.code == 421:  # the server is closing (shutdown): not about the recipient
            raise LmtpUnavailable(f"server closing: {answer.text}")
    except OSError as exc:
        raise LmtpUnavailable(f"LMTP conversation failed: {exc}") from exc
    if answer.code != 250:
        _quit(talk)
        return exit_code(answer.code, answer.enhanced), answer.text
    head = _read_at_most(stdin, limit + 1) if limit else None
    if head is not None and len(head) > limit:
        _quit(talk)  # nothing of the message was sent: the transaction simply ends
        raise LmtpUnavailable(f"message over the server's SIZE {limit}", consumed=head)
    try:
        talk.sock.settimeout(BODY_TIMEOUT)
        final = _send_body(talk, stdin, head)
    except OSError as exc:
        return EX_TEMPFAIL, f"LMTP delivery interrupted: {exc}"
    _quit(talk)
    if final.code == 250:
        return 0, f"delivered to {address} over LMTP: {final.lines[-1]}"
    return exit_code(final.code, final.enhanced), final.text


def _send_body(talk: _Conversation, stdin: BinaryIO, whole: bytes | None) -> _Reply:
    """The message (``whole`` when it was read already, else standard input) as BDAT
    chunks, one ahead so the last is sent with LAST: the reply to the last one (the
    recipient's outcome), or the first refusal of a chunk."""
    read: Callable[[int], bytes] = stdin.read
    if whole is not None:
        pieces = iter([whole[i:i + CHUNK] for i in range(0, len(whole), CHUNK)])

        def read(_: int) -> bytes:
            return next(pieces, b"")
    chunk = read(CHUNK)
    while True:
        following = read(CHUNK) if chunk else b""
        if not following:
            talk.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
            return talk.reply()
        talk.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        reply = talk.reply()
        if reply.code != 250:
            return reply
        chunk = following


def _quit(talk: _Conversation) -> None:
    """End politely (the 221 is awaited, so the server logs a finished session, not a
    dropped one); the outcome is known already, so a failure here changes nothing."""
    try:
        talk.send(b"QUIT\r\n")
        talk.reply()
    except OSError:
        pass
