"""Streaming output encoding of a message for RETR and TOP (RFC 1939 sections 3, 7, 9).

Why a separate encoder: message bodies are streamed chunk by chunk from storage (a 50 MB
message must not be held in memory), so dot-stuffing and line-ending normalisation have to be
exact across arbitrary chunk boundaries, and fast. Both are done with ``bytes.replace`` on
whole chunks (C speed, hundreds of MB/s), and a chunk without any "." skips the stuffing
pass (a memchr) and is returned as it came; the only state carried between chunks is

- a held-back trailing CR (so a CRLF, or CR + LF ".", split over two chunks is still seen
  whole by ``replace``), and
- whether the output so far ends at the start of a line (for a dot opening the next chunk).

Line endings: a content that is not ``crlf_clean`` gets every bare LF turned into CRLF; a CR
not followed by LF is left alone (storage's ``crlf_size`` counts exactly that rewrite, so
the octets sent before stuffing equal the size LIST reported).

Termination (RFC 1939 section 3): the multi-line response ends with CRLF "." CRLF. If the
message already ends with CRLF only ".\\r\\n" is added; if it does not, "\\r\\n.\\r\\n" is sent,
the CRLF serving as the terminator's own line ending. Either way exactly ``crlf_size`` octets
of message go out (the added CRLF belongs to the terminator, not to the message), so clients
that check LIST sizes against what they received agree with us.

:class:`TopLimiter` cuts a raw stream after the header, the blank line and *k* body lines
(RFC 1939 section 7), so the session can stop reading storage as soon as it has enough.
"""

from __future__ import annotations

__all__ = ["DotStuffer", "TopLimiter"]


class DotStuffer:
    """Turns raw message chunks into the dot-stuffed, CRLF-normalised wire form."""

    __slots__ = ("_at_line_start", "_carry_cr", "_normalise", "octets")

    def __init__(self, *, crlf_clean: bool) -> None:
        self._normalise = not crlf_clean
        self._carry_cr = False  # the previous chunk ended with CR, not yet emitted
        self._at_line_start = True  # output so far is empty or ends with CRLF
        self.octets = 0  # message octets emitted, before stuffing (for a size cross-check)

    def encode(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        if self._carry_cr:
            chunk = b"\r" + chunk
            self._carry_cr = False
        if chunk.endswith(b"\r"):
            # hold it back: its LF (if any) arrives with the next chunk
            chunk = chunk[:-1]
            self._carry_cr = True
            if not chunk:
                return b""
        return self._emit(chunk)

    def finish(self) -> bytes:
        """The end of the message: any held CR, then the terminating line."""
        tail = b""
        if self._carry_cr:
            self._carry_cr = False
            tail = self._emit(b"\r")
        return tail + (b".\r\n" if self._at_line_start else b"\r\n.\r\n")

    def _emit(self, data: bytes) -> bytes:
        if self._normalise and b"\n" in data:
            # CRLF -> LF, then every LF -> CRLF: bare LFs gain a CR, CRLFs are unchanged,
            # and "\r\r\n" stays "\r\r\n" because replace() is left-to-right, non-overlapping
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self.octets += len(data)
        self._at_line_start, at_line_start = data.endswith(b"\r\n"), self._at_line_start
        # A chunk without any dot needs no stuffing. Looking for one byte is a memchr
        # (about 100x faster than ``replace`` looking for the three-byte CRLF "." in text
        # full of CRLFs), and a base64 attachment, the bulk of a big message, has no dot.
        if b"." not in data:
            return data
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        if at_line_start and data[:1] == b".":
            stuffed = b"." + stuffed
        return stuffed


class TopLimiter:
    """Passes through a raw message up to the end of the header plus ``body_lines`` lines.

    Works on raw bytes (before :class:`DotStuffer`); a header line ends at LF whatever
    precedes it, and the header ends at the first empty line ("" or a lone CR before LF).
    A message without a blank line is all header and passes through whole.
    """

    __slots__ = ("_in_header", "_line_prefix", "_remaining", "done")

    def __init__(self, body_lines: int) -> None:
        self._in_header = True
        self._line_prefix = b""  # the first (up to 2) bytes of the current header line
        self._remaining = body_lines
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """Return the part of ``chunk`` to send; afterwards ``done`` says to stop reading."""
        if self.done:
            return b""
        pos = 0
        if self._in_header:
            while True:
                lf = chunk.find(b"\n", pos)
                if lf < 0:
                    self._line_prefix = (self._line_prefix + chunk[pos:pos + 2])[:2]
                    return chunk
                line_start = (self._line_prefix + chunk[pos:lf])[:2]
                self._line_prefix = b""
                pos = lf + 1
                if line_start in (b"", b"\r"):
                    self._in_header = False
                    break
        if self._remaining == 0:
            self.done = True
            return chunk[:pos]
        count = chunk.count(b"\n", pos)
        if count < self._remaining:
            self._remaining -= count
            return chunk
        # the wanted lines end inside this chunk: find the last one's LF
        for _ in range(self._remaining):
            pos = chunk.index(b"\n", pos) + 1
        self._remaining = 0
        self.done = True
        return chunk[:pos]
