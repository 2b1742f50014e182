"""Encoding of IMAP data values for server responses (RFC 3501 sections 4 and 9).

Why: every response builder and the FETCH code needs the same few rules, and getting them
wrong corrupts the stream: a string is written quoted only if it is 7-bit text without CR,
LF, NUL, and the result stays short (``quoted-specials`` ``"`` and ``\\`` escaped); anything
else is a literal ``{n}\\r\\n`` + octets (IMAP4rev1 quoted strings are 7-bit, section 4.3).

:func:`encode_sexp` writes the nested Python values the MIME views produce for ENVELOPE and
BODYSTRUCTURE: ``None`` -> ``NIL``, ``int`` -> decimal, ``str``/``bytes`` -> string,
list/tuple -> parenthesised list, :class:`Atom` -> verbatim text (flags, ``\\Seen``),
:class:`Raw` -> verbatim bytes (already encoded), ``datetime`` -> quoted date-time.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime

from mailwing.proto.imap import utf7
from mailwing.proto.imap.grammar import ASTRING_CHARS, MONTHS

__all__ = [
    "UTF8_NAMES", "Atom", "Raw", "astring", "encode_mailbox", "encode_sexp", "flag_list",
    "format_datetime", "literal", "nstring", "quoted", "string",
]

_MAX_QUOTED = 1024  # longer strings are sent as literals (cheaper for clients to parse)
_QUOTABLE = frozenset(range(0x20, 0x7F)) | {0x09}


class Atom(str):
    """Text written verbatim (flags, keywords, ``NIL`` where it must be an atom)."""

    __slots__ = ()


class Raw(bytes):
    """Bytes already in wire form, written verbatim."""

    __slots__ = ()


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def literal(data: bytes | str) -> bytes:
    raw = _as_bytes(data)
    return b"{%d}\r\n" % len(raw) + raw


def quoted(value: str | bytes) -> bytes:
    """A quoted string, or a literal when the text cannot be quoted."""
    raw = _as_bytes(value)
    if len(raw) > _MAX_QUOTED or not _QUOTABLE.issuperset(raw):
        return literal(raw)
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


string = quoted


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else quoted(value)


def astring(value: str | bytes) -> bytes:
    """An atom when possible (never ``NIL``, which would read as nil), else a string."""
    raw = _as_bytes(value)
    if raw and ASTRING_CHARS.issuperset(raw) and raw.upper() != b"NIL":
        return raw
    return quoted(raw)


#: True in a session that enabled UTF8=ACCEPT or IMAP4rev2 (RFC 6855 section 3, RFC 9051
#: section 5.1): mailbox names are then sent as UTF-8, not modified UTF-7. A context variable
#: because each IMAP session runs in its own asyncio task: setting it in one session's task
#: changes nothing for the others, and no response builder needs an extra argument.
UTF8_NAMES: ContextVar[bool] = ContextVar("UTF8_NAMES", default=False)


def encode_mailbox(name: str) -> bytes:
    """A mailbox name in modified UTF-7 (RFC 3501 section 5.1.3), quoted when needed; in a
    session with :data:`UTF8_NAMES`, as a UTF-8 quoted string (RFC 6855 section 3)."""
    if UTF8_NAMES.get():
        if name.isascii():
            return astring(name)
        raw = name.encode("utf-8")
        if len(raw) <= _MAX_QUOTED and not any(b in b'\r\n\x00"\\' for b in raw):
            return b'"' + raw + b'"'
        return literal(raw)
    return astring(utf7.encode(name))


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(flags).encode("ascii") + b")"


def format_datetime(when: datetime) -> str:
    """``dd-Mon-yyyy hh:mm:ss +zzzz`` (RFC 3501 ``date-time``); naive means UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    return (f"{when.day:02d}-{MONTHS[when.month - 1]}-{when.year:04d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{hh:02d}{mm:02d}")


def encode_sexp(value: object) -> bytes:
    """Encode a nested value (see module docstring); raises TypeError on anything else."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: object, out: bytearray) -> None:
    if value is None:
        out += b"NIL"
    elif isinstance(value, Atom):
        out += value.encode("ascii")
    elif isinstance(value, Raw):
        out += value
    elif isinstance(value, bool):
        raise TypeError("booleans have no IMAP form")
    elif isinstance(value, int):
        out += b"%d" % value
    elif isinstance(value, str | bytes | bytearray | memoryview):
        out += quoted(bytes(value) if not isinstance(value, str) else value)
    elif isinstance(value, list | tuple):
        out += b"("
        for i, item in enumerate(value):
            if i:
                out += b" "
            _encode(item, out)
        out += b")"
    elif isinstance(value, datetime):
        out += quoted(format_datetime(value))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as IMAP data")
