"""A small IMAP client for the differential tests: whole responses (literals included) and
a parser that turns one response into nested Python values for normalising.

Why not imaplib: the harness must see every untagged response exactly as sent, in order,
with literals, for any command (IDLE, APPEND with LITERAL+, commands imaplib refuses).
"""

from __future__ import annotations

import contextlib
import re
import socket
from dataclasses import dataclass

__all__ = ["CLOSED", "Atom", "Client", "Literal", "Value", "parse"]

CLOSED = b"* CLOSED-BY-SERVER\r\n"  # stands for "the server closed the connection"
_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n$")


class Atom(str):
    """An atom or number as sent (distinguished from a quoted string)."""


class Literal(bytes):
    """A literal's octets (distinguished from a quoted string)."""


Value = Atom | str | bytes | None | list["Value"]


@dataclass
class Client:
    """One connection: ``command`` sends a tagged line and returns every response up to and
    including the tagged one, each as raw bytes (literal octets inline)."""

    sock: socket.socket
    tag_prefix: str = "t"
    counter: int = 0

    @classmethod
    def connect(cls, port: int, timeout: float = 30.0) -> Client:
        client = cls(socket.create_connection(("127.0.0.1", port), timeout=timeout))
        client._buf = b""
        client.greeting = client.read_response()
        return client

    _buf: bytes = b""
    greeting: bytes = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self._buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._fill()
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line + b"\r\n"

    def read_response(self) -> bytes:
        """One response: a line, plus literal octets and continuation lines."""
        out = self._line()
        while (m := _LITERAL_AT_END.search(out)) is not None:
            n = int(m.group(1))
            while len(self._buf) < n:
                self._fill()
            out += self._buf[:n]
            self._buf = self._buf[n:]
            out += self._line()
        return out

    def next_tag(self) -> str:
        self.counter += 1
        return f"{self.tag_prefix}{self.counter}"

    def send(self, data: bytes) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self.sock.sendall(data)

    def command(self, tag: str, text: bytes) -> list[bytes]:
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.until(tag)

    closed: bool = False

    def until(self, tag: str) -> list[bytes]:
        """Responses up to the tagged one; if the server closes the connection (after a
        BYE), what came before and then ``CLOSED``, which normalises as itself."""
        out: list[bytes] = []
        prefix = tag.encode() + b" "
        while True:
            try:
                response = self.read_response()
            except (ConnectionError, OSError):
                self.closed = True
                return [*out, CLOSED]
            out.append(response)
            if response.startswith(prefix):
                return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# -- parsing responses into values ---------------------------------------------------------

_TOKEN = re.compile(
    rb'[ \r\n]+|\(|\)|"(?:[^"\\]|\\.)*"|~?\{\d+\+?\}\r\n'
    rb'|[^ ()\r\n"{\[\]]+(?:\[[^\]]*\][^ ()\r\n\]]*)?|\[|\]')


def parse(response: bytes) -> list[Value]:
    """The tokens of one response as nested lists: atoms, strings, literals, NIL as None.
    Brackets after an atom stay part of it (``BODY[1.MIME]``); a response code's ``[`` and
    ``]`` become their own atoms."""
    pos = 0
    stack: list[list[Value]] = [[]]
    while pos < len(response):
        m = _TOKEN.match(response, pos)
        if m is None:  # an odd octet: keep it as an atom of its own
            stack[-1].append(Atom(response[pos:pos + 1].decode("latin-1")))
            pos += 1
            continue
        tok = m.group(0)
        pos = m.end()
        if tok.strip(b" \r\n") == b"":
            continue
        if tok == b"(":
            stack.append([])
        elif tok == b")":
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
        elif tok.startswith(b'"'):
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", tok[1:-1]).decode("utf-8", "replace"))
        elif tok.startswith((b"{", b"~{")):  # a literal8 (RFC 3516) is the same string
            n = int(tok[tok.index(b"{") + 1:tok.index(b"}")].rstrip(b"+"))
            stack[-1].append(Literal(response[pos:pos + n]))
            pos += n
        elif tok.upper() == b"NIL":
            stack[-1].append(None)
        else:
            stack[-1].append(Atom(tok.decode("utf-8", "replace")))
    while len(stack) > 1:
        done = stack.pop()
        stack[-1].append(done)
    return stack[0]
