"""Framing of client input: command lines and literals (RFC 3501 sections 2.2, 4.3, 7.5;
RFC 7888 LITERAL+), as a sans-IO reader.

Why: a command is one line, except that a line ending in ``{n}`` or ``{n+}`` announces n
octets of literal data followed by the rest of the command. The reader collects the pieces
(``[text, literal, text, ...]``), asks the session to send ``+`` before each synchronising
literal, and hands the complete command to ``parser.parse_command``. It never raises on
input; anything wrong becomes a :class:`~events.ProtocolError`.

Limits (the memory held per connection is bounded by them):

- ``max_line``: the text of one command, excluding literal data, CRLFs included.
  An over-long line is dropped as it arrives; only its first octets are kept, for the tag.
- ``max_literal``: the total literal data of any command but APPEND.
- ``max_message``: one APPEND message literal (plus ``max_literal`` for the other
  strings of the command).

A too-big *synchronising* literal is answered ``NO [TOOBIG]`` at once and no continuation is
sent, so the client never sends the data (RFC 7888 section 4, RFC 3501 section 7.5). A
too-big *non-synchronising* literal is on its way regardless: the reader skips exactly n
octets without storing them, discards the rest of that command (skipping further ``{m+}``
literals too), then reports ``NO [TOOBIG]``. Beyond ``max_skip`` octets skipping is not
worth it and the error carries ``close=True``. Any other framing error met mid-command
(line too long, NUL) is handled the same way, with BAD.

Modes driven by the session: :meth:`ImapReader.expect_line` makes the next line a
:class:`~events.LineReceived` (AUTHENTICATE continuation, IDLE's ``DONE``), and
:meth:`ImapReader.clear` forgets buffered input after STARTTLS (RFC 3501 section 6.2.1).
"""

from __future__ import annotations

import re

from mailwing.proto.imap import texts
from mailwing.proto.imap.events import (
    NEED_DATA,
    CommandReceived,
    Event,
    LineReceived,
    ProtocolError,
    SendContinuation,
)
from mailwing.proto.imap.grammar import ParseError
from mailwing.proto.imap.parser import parse_command, read_tag

__all__ = ["ImapReader"]

#: ``[UID] SEARCH|SORT RETURN (... SAVE ...)`` at the start of a failed command (RFC 5182)
_SAVE_RE = re.compile(rb"^\S+ (?:UID )?(?:SEARCH|SORT) RETURN \([^)]*\bSAVE\b", re.IGNORECASE)

_LITERAL_RE = re.compile(rb"\{(\d{1,20})(\+?)\}$")
_APPEND_RE = re.compile(rb"[^ ]+ APPEND ", re.IGNORECASE)
_COMPACT_AT = 64 * 1024
_KEEP = 128  # octets kept from the start and the end of an over-long line


class ImapReader:
    """Feed with :meth:`receive_data`; call :meth:`next_event` until it returns
    :data:`~events.NEED_DATA`."""

    def __init__(self, max_line: int = 65536, max_literal: int = 65536,
                 max_message: int = 52_428_800, max_skip: int | None = None) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_message = max_message
        self.max_skip = max_message if max_skip is None else max_skip
        self._buf = bytearray()
        self._pos = 0
        self._scanned = 0
        self._expect_line = False
        self._reset()

    def _reset(self) -> None:
        self._parts: list[bytes] = []
        self._line_used = 0  # text octets of the current command so far
        self._lit_budget = 0
        self._literal_need = 0  # > 0: reading literal data
        self._skip = 0  # > 0: skipping a refused non-synchronising literal
        self._error: ProtocolError | None = None  # set: discarding the rest of a command
        self._long: bytes | None = None  # prefix of a line being dropped for length
        self._long_tail = b""

    # -- session API ----------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def expect_line(self) -> None:
        """The next line is raw (AUTHENTICATE response, IDLE ``DONE``): it comes back as
        :class:`LineReceived` instead of being parsed as a command."""
        self._expect_line = True

    def clear(self) -> None:
        """Forget all buffered and partial input (after STARTTLS)."""
        self._buf.clear()
        self._pos = 0
        self._scanned = 0
        self._expect_line = False
        self._reset()

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def next_event(self) -> Event:
        try:
            return self._next()
        except Exception:  # defensive: a reader bug must not crash or loop the session
            tag = self._tag(b"")
            self.clear()
            return ProtocolError(tag, texts.INTERNAL_PARSE, close=True)

    # -- internals ------------------------------------------------------------------------
    def _next(self) -> Event:
        while True:
            if self._literal_need:
                if self.buffered < self._literal_need:
                    return NEED_DATA
                end = self._pos + self._literal_need
                self._parts.append(bytes(self._buf[self._pos:end]))
                self._consume(end)
                self._literal_need = 0
                continue
            if self._skip:
                take = min(self._skip, self.buffered)
                self._consume(self._pos + take)
                self._skip -= take
                if self._skip:
                    return NEED_DATA
                continue
            got = self._line()
            if got is None:
                return NEED_DATA
            event = self._on_line(*got)
            if event is not None:
                return event

    def _consume(self, end: int) -> None:
        self._pos = end
        self._scanned = 0
        if self._pos >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos >= _COMPACT_AT:
            del self._buf[:self._pos]
            self._pos = 0

    def _line(self) -> tuple[bytes, bool] | None:
        """The next line without CRLF and whether it was too long (then only its last
        octets are returned), or None; over-long lines are dropped as they arrive."""
        limit = max(self.max_line - self._line_used, 0)
        lf = self._buf.find(b"\n", self._pos + self._scanned)
        if lf < 0:
            pending = self.buffered
            if pending > limit or self._long is not None:
                chunk = bytes(self._buf[self._pos:])
                if self._long is None:
                    self._long = chunk[:_KEEP]
                self._long_tail = (self._long_tail + chunk)[-_KEEP:]
                self._consume(len(self._buf))
            else:
                self._scanned = pending
            return None
        end = lf - 1 if lf > self._pos and self._buf[lf - 1] == 0x0D else lf
        line = bytes(self._buf[self._pos:end])
        self._consume(lf + 1)
        if self._long is not None:
            prefix, line = self._long, (self._long_tail + line)[-_KEEP:]
            self._long, self._long_tail = None, b""
            if not self._parts:
                self._parts.append(prefix)  # for the tag only; the command is refused
            return line, True
        return line, len(line) + 2 > limit

    def _on_line(self, line: bytes, too_long: bool) -> Event | None:
        if self._expect_line:
            self._expect_line = False
            if too_long:
                self._reset()
                return ProtocolError(None, texts.LINE_TOO_LONG)
            return LineReceived(line)
        if too_long and self._error is None:
            self._error = ProtocolError(self._tag(line), texts.LINE_TOO_LONG)
        if self._error is not None:
            return self._discarding(line)
        if not self._parts and not line:
            return ProtocolError(None, texts.EMPTY_LINE)
        if not self._parts:
            self._lit_budget = (self.max_message + self.max_literal
                                if _APPEND_RE.match(line) else self.max_literal)
        self._line_used += len(line) + 2
        if b"\x00" in line:
            self._error = ProtocolError(self._tag(line), texts.NUL_IN_LINE)
            return self._discarding(line)
        m = _LITERAL_RE.search(line)
        self._parts.append(line)
        if m is None:
            return self._complete()
        size, nonsync = int(m.group(1)), bool(m.group(2))
        appending = self._lit_budget > self.max_literal
        if size > self._lit_budget or (appending and size > self.max_message):
            text = texts.MESSAGE_TOO_BIG if appending else texts.LITERAL_TOO_BIG
            self._error = ProtocolError(read_tag(self._parts[0]), text, too_big=True)
            return self._discarding(line)
        self._lit_budget -= size
        self._literal_need = size
        if size == 0:
            self._parts.append(b"")
        if nonsync:
            return None
        return SendContinuation(texts.CONTINUE_LITERAL)

    def _tag(self, line: bytes) -> str | None:
        return read_tag(self._parts[0] if self._parts else line)

    def _discarding(self, line: bytes) -> Event | None:
        """Inside a rejected command: skip announced ``{n+}`` data, report at its end."""
        m = _LITERAL_RE.search(line)
        if m is not None and m.group(2):
            size = int(m.group(1))
            if size > self.max_skip:
                error = self._error
                self._reset()
                assert error is not None
                return ProtocolError(error.tag, texts.LITERAL_ABSURD, error.too_big,
                                     error.code, close=True)
            self._skip = size
            return None
        error = self._error
        self._reset()
        return error

    def _complete(self) -> Event:
        parts = self._parts
        self._reset()
        try:
            return CommandReceived(parse_command(parts))
        except ParseError as exc:
            return ProtocolError(read_tag(parts[0]), exc.text, code=exc.code,
                                 saves_result=_SAVE_RE.search(parts[0]) is not None)
