"""A bounded line reader shared by the sans-IO protocol cores (POP3, SMTP, IMAP).

Why: every text protocol here reads CRLF-terminated command lines, and every one of them must
refuse a line that is too long *without* keeping it in memory (RFC 2449 section 4 caps POP3
commands at 255 octets including CRLF; RFC 5321 section 4.5.3.1.4 caps SMTP command lines at
512). The reader never holds more than the bytes of one ``receive_data`` call beyond the
limit: once a line is known to be too long its bytes are thrown away up to the next LF and
the caller gets a single :data:`LINE_TOO_LONG` marker for it, so the protocol can answer one
error and carry on in step with the client.

Leniency: a bare LF ends a line as well as CRLF (many hand-written clients and test scripts
send LF); the terminator is removed from what is returned. The limit is checked against the
line *as if* it ended in CRLF, so a client gains nothing by sending bare LFs. The limit can
differ per call (a POP3 AUTH continuation line may be longer than a command line).

The reader does not interpret bytes (no decoding, no NUL checks): that is the protocol's job.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LINE_TOO_LONG", "LineReader", "LineTooLong"]


class LineTooLong:
    """Marker type: the line just consumed exceeded the limit and was discarded."""

    _instance: LineTooLong | None = None

    def __new__(cls) -> LineTooLong:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "LINE_TOO_LONG"


LINE_TOO_LONG: Final = LineTooLong()

# Compact the buffer only once this many consumed bytes sit in front of it, so pipelined
# input of many short lines costs O(n), not O(n^2) in memmove.
_COMPACT_AT = 16 * 1024


class LineReader:
    """Accumulates received bytes and hands out complete lines one at a time.

    ``max_length`` counts the whole line including a CRLF terminator (RFC 2449 style).
    """

    __slots__ = ("_buf", "_discarding", "_pos", "_scanned", "max_length")

    def __init__(self, max_length: int) -> None:
        if max_length < 3:
            raise ValueError("max_length must leave room for at least one octet and CRLF")
        self.max_length = max_length
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed part of _buf
        self._scanned = 0  # offset (from _pos) up to which we know there is no LF
        self._discarding = False  # inside an over-long line, dropping bytes until LF

    # -- input ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        if self._discarding:
            lf = data.find(b"\n")
            if lf < 0:
                return  # still inside the over-long line: nothing to keep
            # keep a stub so that next_line() reports the end of the long line
            self._buf += b"\n"
            self._buf += data[lf + 1:]
            return
        self._buf += data

    def clear(self) -> None:
        """Forget everything buffered (after STARTTLS/STLS: RFC 2595 section 4, RFC 3207
        section 4.2 forbid acting on plaintext bytes pipelined behind the upgrade)."""
        self._buf.clear()
        self._pos = 0
        self._scanned = 0
        self._discarding = False

    @property
    def buffered(self) -> int:
        """How many received bytes wait unconsumed."""
        return len(self._buf) - self._pos

    # -- output ---------------------------------------------------------------------------
    def next_line(self, max_length: int | None = None) -> bytes | LineTooLong | None:
        """Return the next line without its terminator, :data:`LINE_TOO_LONG`, or ``None``
        when no complete line has arrived yet."""
        limit = self.max_length if max_length is None else max_length
        buf = self._buf
        start = self._pos
        lf = buf.find(b"\n", start + self._scanned)
        if lf < 0:
            pending = len(buf) - start
            # pending bytes, a possible CR among them, must fit in limit - 1 (room for LF)
            if pending > limit - 1:
                self._discarding = True
                self._drop_all()
            else:
                self._scanned = pending
            return None
        end = lf
        if end > start and buf[end - 1] == 0x0D:
            end -= 1
        line = bytes(buf[start:end])
        self._pos = lf + 1
        self._scanned = 0
        self._compact()
        if self._discarding:
            self._discarding = False
            return LINE_TOO_LONG
        if len(line) + 2 > limit:
            return LINE_TOO_LONG
        return line

    # -- internals ------------------------------------------------------------------------
    def _drop_all(self) -> None:
        self._buf.clear()
        self._pos = 0
        self._scanned = 0

    def _compact(self) -> None:
        if self._pos >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos >= _COMPACT_AT:
            del self._buf[: self._pos]
            self._pos = 0
