"""A small IMAP client over a raw socket for the append/transport tests (no tests here).

Why not imaplib: it cannot send MULTIAPPEND, CATENATE or literal8, and it cannot switch to
DEFLATE after COMPRESS. This client sends bytes as given (``{n+}`` literals need no
continuation), reads whole responses (literals ``{n}`` and ``~{n}`` included), and can turn
raw DEFLATE on in both directions (RFC 4978).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import zlib

__all__ = ["WireClient", "lit"]

_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\}\r\n$")


class WireClient:
    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock: socket.socket = tls.wrap_socket(sock) if tls is not None else sock
        self.buf = b""
        self._deflate: zlib._Compress | None = None
        self._inflate: zlib._Decompress | None = None
        self.wire_in = 0  # octets received on the socket
        self.wire_out = 0
        self.greeting = self._line()

    # -- transport --------------------------------------------------------------------------
    def compress(self) -> None:
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.wire_out += len(data)
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed; buffered {self.buf[:200]!r}")
        self.wire_in += len(data)
        if self._inflate is not None:
            data = self._inflate.decompress(data)
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    # -- responses --------------------------------------------------------------------------
    def response(self) -> bytes:
        """One whole response, literals included, without the final CRLF."""
        out = b""
        while True:
            line = self._line()
            out += line
            m = _LITERAL_AT_END.search(line)
            if m is None:
                return out[:-2]
            out += self._exact(int(m.group(1)))

    def command(self, tag: str, text: bytes) -> list[bytes]:
        """Send ``tag text CRLF``; every response up to the tagged one (inclusive)."""
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.until(tag)

    def until(self, tag: str) -> list[bytes]:
        out = []
        while True:
            got = self.response()
            out.append(got)
            if got.startswith(tag.encode() + b" "):
                return out

    def starttls(self, ctx: ssl.SSLContext) -> None:
        done = self.command("T", b"STARTTLS")
        assert done[-1].startswith(b"T OK"), done
        self.sock = ctx.wrap_socket(self.sock)

    def login(self, user: str, password: str) -> None:
        done = self.command("L", b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))
        assert done[-1].startswith(b"L OK"), done

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def lit(data: bytes, *, binary: bool = False) -> bytes:
    """A non-synchronising literal (RFC 7888) of ``data``; ``~`` for a literal8."""
    return (b"~" if binary else b"") + b"{%d+}\r\n" % len(data) + data
