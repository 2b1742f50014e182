"""Low-level IMAP4rev1 syntax (RFC 3501 section 9, formal syntax) over one assembled command.

Why: the reader (``reader.py``) hands over a command as alternating text pieces and literal
payloads: ``[text0, lit0, text1, lit1, ..., textN]`` where each text piece but the last ends
in a literal announcement ``{n}`` / ``{n+}`` (RFC 7888). :class:`Cursor` walks that sequence
as if the literals were inline, so the command parsers in ``commands.py``, ``fetchitems.py``
and ``search.py`` read tokens without caring how the client framed its strings.

Every failure is a :class:`ParseError` carrying the text for ``tag BAD text``; the command
parsers never let anything else escape (the reader turns unexpected exceptions into BAD too).

Token rules implemented: atom (ATOM-CHAR), astring (ASTRING-CHAR, quoted, literal), quoted
strings with ``\\`` and ``\"`` escapes only, literals, nstring, number / nz-number (32-bit),
list-mailbox (wildcards ``%`` and ``*``), flags, date and date-time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TypeVar

from mailwing.proto.imap import texts
from mailwing.proto.imap.seqset import SAVED, SequenceSet, SequenceSetError

__all__ = ["Cursor", "ParseError", "run_pattern"]

T = TypeVar("T")

_CTL = set(range(0x00, 0x20)) | {0x7F}
_ATOM_SPECIALS = set(b'(){ %*"\\]') | _CTL
ATOM_CHARS = frozenset(c for c in range(0x01, 0x80) if c not in _ATOM_SPECIALS)
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
LIST_CHARS = ASTRING_CHARS | {ord("%"), ord("*")}
_SET_CHARS = frozenset(b"0123456789:,*")
_DIGITS = frozenset(b"0123456789")
#: one compiled ``[...]*`` pattern per character set given to :meth:`Cursor.run` (the sets
#: are module constants, so this stays tiny): a regex match scans a token in C instead of
#: one Python loop iteration per octet, the parser's main cost per command
_RUN_PATTERNS: dict[frozenset[int], re.Pattern[bytes]] = {}
_LITERAL_RE = re.compile(rb"\{(\d{1,20})(\+?)\}$")
# System flags (RFC 3501 2.3.2) and special-use attributes (RFC 6154 2) in canonical case.
_CANONICAL_FLAGS = {f.upper(): f for f in (
    "\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent",
    "\\All", "\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash",
)}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUM = {m.upper(): i + 1 for i, m in enumerate(MONTHS)}
_DATE_RE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})$")
_DATETIME_RE = re.compile(
    r"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$"
)


class ParseError(ValueError):
    """The command does not follow the grammar; ``text`` is for the BAD response.
    ``code`` (e.g. ``BADCHARSET (UTF-8 US-ASCII)``) turns the answer into ``NO [code]``."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class Cursor:
    """Reads tokens from ``[text, literal, text, ...]``; see the module docstring."""

    __slots__ = ("_lits", "_parts", "buf", "idx", "pos")

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts[0::2]
        self._lits = parts[1::2]
        self.idx = 0
        self.buf = self._parts[0]
        self.pos = 0

    # -- primitive access -----------------------------------------------------------------
    def at_end(self) -> bool:
        return self.pos >= len(self.buf) and self.idx == len(self._parts) - 1

    def peek(self) -> int:
        """Next byte of the current text piece, -1 at the end of a piece."""
        return self.buf[self.pos] if self.pos < len(self.buf) else -1

    def peek_literal(self) -> bool:
        return self.peek() == ord("{")

    def expect(self, char: bytes, what: str | None = None) -> None:
        if not self.buf.startswith(char, self.pos):
            raise ParseError(what or texts.EXPECTED.format(char.decode("ascii", "replace")))
        self.pos += len(char)

    def accept(self, char: bytes) -> bool:
        if self.buf.startswith(char, self.pos):
            self.pos += len(char)
            return True
        return False

    def sp(self) -> None:
        if not self.buf.startswith(b" ", self.pos):
            raise ParseError(texts.EXPECTED_SP)
        self.pos += 1

    def end(self) -> None:
        if not self.at_end():
            raise ParseError(texts.TRAILING)

    def run(self, allowed: frozenset[int]) -> bytes:
        """The longest run of ``allowed`` octets at the cursor (possibly empty)."""
        pattern = _RUN_PATTERNS.get(allowed)
        if pattern is None:
            pattern = _RUN_PATTERNS[allowed] = run_pattern(allowed)
        m = pattern.match(self.buf, self.pos)
        assert m is not None  # ``[...]*`` matches the empty string at least
        self.pos = m.end()
        return m.group()

    # -- tokens ---------------------------------------------------------------------------
    def atom(self, what: str = "atom") -> str:
        raw = self.run(ATOM_CHARS)
        if not raw:
            raise ParseError(texts.EXPECTED.format(what))
        return raw.decode("ascii")

    def keyword(self) -> str:
        """An atom, upper-cased (command names, item names, search keys)."""
        return self.atom("keyword").upper()

    def number(self, nonzero: bool = False) -> int:
        raw = self.run(_DIGITS)
        if not raw or len(raw) > 10:
            raise ParseError(texts.EXPECTED_NUMBER)
        value = int(raw)
        if value > 0xFFFFFFFF or (nonzero and value == 0):
            raise ParseError(texts.EXPECTED_NUMBER)
        return value

    def number64(self) -> int:
        raw = self.run(_DIGITS)
        if not raw or len(raw) > 20 or int(raw) >= 2**63:
            raise ParseError(texts.EXPECTED_NUMBER)
        return int(raw)

    def sequence_set(self) -> SequenceSet:
        if self.peek() == ord("$"):  # RFC 5182 seq-last-command: only on its own
            self.pos += 1
            if self.peek() not in (-1, ord(" "), ord(")")):
                raise ParseError(texts.BAD_SEQUENCE_SET)
            return SAVED
        try:
            return _sequence_set(self.run(_SET_CHARS))
        except SequenceSetError as exc:
            raise ParseError(texts.BAD_SEQUENCE_SET) from exc

    def paren_list(self, item: Callable[[], T]) -> tuple[T, ...]:
        """``"(" [item *(SP item)] ")"``."""
        self.expect(b"(")
        items: list[T] = []
        if not self.accept(b")"):
            while True:
                items.append(item())
                if self.accept(b")"):
                    break
                self.sp()
        return tuple(items)

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        buf = self.buf
        while True:
            if self.pos >= len(buf):
                raise ParseError(texts.UNTERMINATED_QUOTED)
            c = buf[self.pos]
            self.pos += 1
            if c == 0x22:
                return bytes(out)
            if c == 0x5C:
                if self.pos >= len(buf) or buf[self.pos] not in (0x22, 0x5C):
                    raise ParseError(texts.BAD_ESCAPE)
                c = buf[self.pos]
                self.pos += 1
            elif c in (0x00, 0x0A, 0x0D):
                raise ParseError(texts.BAD_QUOTED_CHAR)
            out.append(c)

    def literal(self) -> bytes:
        m = _LITERAL_RE.match(self.buf, self.pos)
        if m is None or m.end() != len(self.buf) or self.idx >= len(self._lits):
            raise ParseError(texts.BAD_LITERAL)
        value = self._lits[self.idx]
        if len(value) != int(m.group(1)):
            raise ParseError(texts.BAD_LITERAL)
        self.idx += 1
        self.buf = self._parts[self.idx]
        self.pos = 0
        return value

    def string(self) -> bytes:
        c = self.peek()
        if c == ord('"'):
            return self.quoted()
        if c == ord("{"):
            return self.literal()
        raise ParseError(texts.EXPECTED_STRING)

    def astring(self) -> bytes:
        c = self.peek()
        if c in (ord('"'), ord("{")):
            return self.string()
        raw = self.run(ASTRING_CHARS)
        if not raw:
            raise ParseError(texts.EXPECTED_STRING)
        return raw

    def nstring(self) -> bytes | None:
        if self.peek() in (ord('"'), ord("{")):
            return self.string()
        word = self.run(ATOM_CHARS)
        if word.upper() != b"NIL":
            raise ParseError(texts.EXPECTED_STRING)
        return None

    def list_mailbox(self) -> bytes:
        c = self.peek()
        if c in (ord('"'), ord("{")):
            return self.string()
        raw = self.run(LIST_CHARS)
        if not raw:
            raise ParseError(texts.EXPECTED_MAILBOX)
        return raw

    def text_string(self) -> str:
        """An astring as UTF-8 text (user names, passwords, search strings)."""
        try:
            return self.astring().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(texts.NOT_UTF8) from exc

    def flag(self) -> str:
        """``\\Answered`` ... ``\\Draft``, another ``\\atom`` or a keyword atom. System
        flags and special-use names come back in their canonical capitalisation."""
        if self.accept(b"\\"):
            name = "\\" + self.atom("flag")
            return _CANONICAL_FLAGS.get(name.upper(), name)
        return self.atom("flag")

    def flag_list(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.paren_list(self.flag)))

    def date(self) -> date:
        """``date`` (RFC 3501 section 9): ``d-Mon-yyyy``, optionally quoted."""
        text = self.quoted() if self.peek() == ord('"') else self.run(ATOM_CHARS)
        m = _DATE_RE.match(text.decode("ascii", "replace"))
        if m is None or m.group(2).upper() not in _MONTH_NUM:
            raise ParseError(texts.BAD_DATE)
        try:
            return date(int(m.group(3)), _MONTH_NUM[m.group(2).upper()], int(m.group(1)))
        except ValueError as exc:
            raise ParseError(texts.BAD_DATE) from exc

    def date_time(self) -> datetime:
        """``date-time``: ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (always quoted)."""
        raw = self.quoted().decode("ascii", "replace")
        m = _DATETIME_RE.match(raw)
        if m is None or m.group(2).upper() not in _MONTH_NUM:
            raise ParseError(texts.BAD_DATE_TIME)
        day, _, year, hh, mm, ss, sign, zh, zm = m.groups()
        offset = timedelta(hours=int(zh), minutes=int(zm))
        try:
            tz = UTC if not offset else timezone(-offset if sign == "-" else offset)
            return datetime(
                int(year), _MONTH_NUM[m.group(2).upper()], int(day),
                int(hh), int(mm), int(ss), tzinfo=tz,
            )
        except ValueError as exc:
            raise ParseError(texts.BAD_DATE_TIME) from exc

    def paren_atoms(self) -> tuple[str, ...]:
        """``"(" atom *(SP atom) ")"`` upper-cased (STATUS items, RETURN options...)."""
        return self.paren_list(self.keyword)


def run_pattern(allowed: frozenset[int]) -> re.Pattern[bytes]:
    """``[...]*`` over the octets of ``allowed``: the longest run of them, matched in C."""
    return re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in sorted(allowed)) + b"]*")


@functools.lru_cache(maxsize=1024)
def _sequence_set(raw: bytes) -> SequenceSet:
    """Parsed sets by their text: clients repeat the same few (``1:*``, one number), and a
    :class:`SequenceSet` is immutable, so one parse serves every repeat (errors are raised
    afresh each time: ``lru_cache`` keeps only results)."""
    return SequenceSet.parse(raw.decode("ascii"))
