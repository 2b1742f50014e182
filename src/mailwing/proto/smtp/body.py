"""The SMTP input buffer and the DATA body reader (RFC 5321 sections 4.1.1.4, 4.5.2, 2.3.8).

Why a buffer of our own: an SMTP connection switches between command lines and raw body
bytes (DATA, and BDAT whose octet counts are exact, RFC 3030 section 2), so the core needs
"the next line" and "the next n bytes" from one buffer. :class:`InputBuffer` gives both and,
like :mod:`mailwing.proto.common.lines`, never keeps an over-long command line in memory.

:class:`DataReader` is the SMTP smuggling defence. ONLY ``<CRLF>.<CRLF>`` ends a message:
a line is what ends in CRLF, so ``<LF>.<LF>``, ``<CR>.<CR>``, ``<LF>.<CRLF>`` and
``<CRLF>.<LF>`` are ordinary bytes inside the body and can never end it or start a second
transaction. Such bytes are not stored either: a bare CR, a bare LF (RFC 5321 section 2.3.8)
or a NUL marks the message as refused (``550 5.6.0``), as does a line longer than 1000 octets
including CRLF (section 4.5.3.1.6) and a body over the size limit (``552 5.3.4``, RFC 1870).
The refusal is only *answered* after the terminating ``<CRLF>.<CRLF>``: the reader keeps
parsing to the real end so the client and server stay in step.

Bounded memory: bytes are handed out as they are unstuffed (section 4.5.2: one leading dot
removed); only up to two bytes (a trailing CR, or a ``.``/``.<CR>`` at a line start) are held
back between calls. A fast path passes whole runs of plain lines through untouched.
"""

from __future__ import annotations

from mailwing.proto.common.lines import LINE_TOO_LONG, LineTooLong
from mailwing.proto.smtp.replies import R, Reply

__all__ = ["TEXT_LINE_LIMIT", "DataReader", "InputBuffer"]

TEXT_LINE_LIMIT = 1000  # octets including CRLF (RFC 5321 section 4.5.3.1.6)
_COMPACT_AT = 16 * 1024


class InputBuffer:
    """Received bytes, handed out as CRLF/LF lines or as raw bytes."""

    __slots__ = ("_buf", "_discarding", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._discarding = False  # inside an over-long line: dropping bytes up to LF

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        """Forget everything (after STARTTLS: RFC 3207 section 4.2)."""
        self._buf.clear()
        self._pos = 0
        self._discarding = False

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def next_line(self, limit: int) -> bytes | LineTooLong | None:
        """The next line without its terminator, ``LINE_TOO_LONG`` (its bytes dropped), or
        ``None`` if no complete line is buffered. ``limit`` counts CRLF."""
        lf = self._buf.find(b"\n", self._pos)
        if lf < 0:
            if self._discarding or self.buffered > limit - 1:
                self._discarding = True
                self._buf.clear()
                self._pos = 0
            return None
        end = lf - 1 if lf > self._pos and self._buf[lf - 1] == 0x0D else lf
        line = bytes(self._buf[self._pos:end])
        self._consume_to(lf + 1)
        if self._discarding:
            self._discarding = False
            return LINE_TOO_LONG
        if len(line) + 2 > limit:
            return LINE_TOO_LONG
        return line

    def take(self, n: int) -> bytes:
        """Up to ``n`` raw bytes (fewer if fewer are buffered)."""
        end = min(len(self._buf), self._pos + n)
        data = bytes(self._buf[self._pos:end])
        self._consume_to(end)
        return data

    def peek(self) -> bytes:
        return bytes(self._buf[self._pos:])

    def skip(self, n: int) -> None:
        self._consume_to(self._pos + n)

    def _consume_to(self, pos: int) -> None:
        self._pos = pos
        if self._pos >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos >= _COMPACT_AT:
            del self._buf[:self._pos]
            self._pos = 0


class DataReader:
    """Dot-unstuffs a DATA body, detects its end, and judges it (see the module docstring)."""

    __slots__ = ("_at_start", "_held", "_line", "done", "max_size", "problem", "size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0  # unstuffed octets of the body so far
        self.problem: Reply | None = None  # the first reason to refuse the message
        self.done = False
        self._at_start = True  # the next byte begins a line
        self._line = 0  # octets of the current line so far (leading dot included)
        self._held = b""  # bytes kept back until the next call decides what they are

    def feed(self, data: bytes) -> tuple[bytes, int]:
        """Return (unstuffed bytes to store, octets of ``data`` consumed). Fewer than
        ``len(data)`` are consumed only when the end was found: the rest is commands."""
        held = self._held
        buf = held + data if held else data
        self._held = b""
        out: list[bytes] = []
        i = 0
        n = len(buf)
        fast = True
        while i < n:
            if self._at_start:
                if buf[i] == 0x2E:  # "."
                    head = buf[i:i + 3]
                    if head == b".\r\n":
                        self.done = True
                        i += 3
                        break
                    if head in (b".", b".\r"):  # could still become ".\r\n"
                        self._held = bytes(head)
                        i = n
                        break
                    i += 1  # the stuffed dot (RFC 5321 section 4.5.2)
                    self._line = 1
                self._at_start = False
            if fast:
                k = buf.find(b"\r\n.", i)
                stop = k + 2 if k >= 0 else buf.rfind(b"\r\n", i) + 2  # 1: no CRLF
                if stop >= i + 2 and self._plain(buf, i, stop):
                    self._emit(out, buf[i:stop])
                    self._line = 0
                    self._at_start = True
                    i = stop
                    continue
                fast = False  # something special ahead: line by line for this call
            j = buf.find(b"\r\n", i)
            if j < 0:
                end = n - 1 if buf[n - 1] == 0x0D else n
                self._check(buf[i:end], complete=False)
                self._emit(out, buf[i:end])
                self._held = bytes(buf[end:n])
                i = n
                break
            self._check(buf[i:j], complete=True)
            self._emit(out, buf[i:j + 2])
            self._line = 0
            self._at_start = True
            i = j + 2
        consumed = max(0, i - len(held)) if self.done else len(data)
        return b"".join(out), consumed

    def _plain(self, buf: bytes, start: int, end: int) -> bool:
        """Whether buf[start:end] (whole lines) needs no per-line work: no stuffed dots,
        no NUL, no bare CR/LF, no over-long line."""
        region = buf[start:end]
        crlf = region.count(b"\r\n")
        if (b"\r\n." in region or b"\0" in region or region.count(b"\r") != crlf
                or region.count(b"\n") != crlf):
            return False
        first = region.find(b"\r\n")
        if self._line + first + 2 > TEXT_LINE_LIMIT:
            return False
        return len(region) <= TEXT_LINE_LIMIT or max(map(len, region.split(b"\r\n"))) + 2 \
            <= TEXT_LINE_LIMIT

    def _check(self, segment: bytes, *, complete: bool) -> None:
        self._line += len(segment)
        if self.problem is not None:
            return
        if b"\0" in segment:
            self.problem = R.NUL_IN_MESSAGE
        elif b"\r" in segment or b"\n" in segment:
            self.problem = R.BARE_LINE_ENDING
        elif self._line + (2 if complete else 0) > TEXT_LINE_LIMIT:
            self.problem = R.TEXT_LINE_TOO_LONG

    def _emit(self, out: list[bytes], data: bytes) -> None:
        self.size += len(data)
        if self.problem is None and self.size > self.max_size:
            self.problem = R.MESSAGE_TOO_BIG
        if self.problem is None and data:
            out.append(data)
