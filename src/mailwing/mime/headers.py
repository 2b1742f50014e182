"""Header blocks with byte offsets (RFC 5322 section 2.2, RFC 2045 section 3, RFC 2231).

Why our own scanner: IMAP BODY[HEADER.FIELDS (...)] must return the original header lines,
folded continuation lines included, in message order (RFC 3501 section 6.4.5), and the stdlib
``email`` parser neither keeps byte offsets nor guarantees the original octets. So this module
only splits a header block into fields and records where each starts and ends; everything that
needs real header grammar (MIME parameters with RFC 2231 continuations and charsets) is handed
to :class:`email.message.Message` with the ``compat32`` policy, which does it well.

Field values are ``str`` decoded from UTF-8 with ``surrogateescape``: encoding them back with
``value.encode("utf-8", "surrogateescape")`` gives the original octets, 8-bit bytes included.
:func:`wire_text` is what the IMAP views hand out: the ``str`` when it is valid UTF-8, else
the original ``bytes`` (a strict UTF-8 encoder could not write the escaped octets).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value

__all__ = [
    "MAX_FIELDS",
    "HeaderField",
    "Params",
    "parse_params",
    "scan_headers",
    "unfold",
    "wire_text",
]

#: Fields kept per header block; later ones still count towards finding the body, but are not
#: stored (a hostile message with millions of one-byte fields must not cost millions of objects).
MAX_FIELDS = 10_000

Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: ``raw[start:end]`` is its original text including its line end."""

    name: str
    value: str
    start: int
    end: int

    @property
    def key(self) -> str:
        """The field name folded for case-insensitive comparison."""
        return self.name.casefold()


def unfold(data: bytes) -> str:
    """RFC 5322 section 2.2.3 unfolding (drop the line breaks, keep the whitespace)."""
    text = data.replace(b"\r\n", b"").replace(b"\n", b"").replace(b"\r", b"")
    return text.strip(b" \t").decode("utf-8", "surrogateescape")


def wire_text(value: str | None) -> str | bytes | None:
    """``value`` as ENVELOPE/BODYSTRUCTURE data: ``str`` if valid UTF-8, else its octets."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")
    return value


def _field_name(line: bytes) -> str | None:
    colon = line.find(b":")
    if colon <= 0:
        return None
    name = line[:colon].rstrip(b" \t")  # obsolete syntax allows WSP before the colon
    if not name or any(b < 33 or b > 126 for b in name):
        return None
    return name.decode("ascii")


def scan_headers(raw: bytes, start: int, limit: int) -> tuple[list[HeaderField], int]:
    """Split the header block beginning at ``start``; return the fields and the body offset.

    The header ends after the first empty line (CRLF or a bare LF), which belongs to the header
    as RFC 3501 section 6.4.5 counts it. A line that is neither a field nor a continuation ends
    the header without a blank line (the ``email`` package makes the same choice), and so does
    ``limit``.
    """
    fields: list[HeaderField] = []
    name: str | None = None
    field_start = start
    pos = start

    def close(end: int) -> None:
        if name is not None and len(fields) < MAX_FIELDS:
            colon = raw.index(b":", field_start, end)
            fields.append(HeaderField(name, unfold(raw[colon + 1 : end]), field_start, end))

    while pos < limit:
        eol = raw.find(b"\n", pos, limit)
        line_end = limit if eol < 0 else eol + 1
        first = raw[pos]
        if first in (0x0D, 0x0A) and raw[pos:line_end].strip(b"\r\n") == b"":
            close(pos)
            return fields, line_end
        if first in (0x20, 0x09) and name is not None:
            pos = line_end  # continuation line of the current field
            continue
        new_name = _field_name(raw[pos:line_end])
        close(pos)
        if new_name is None:
            return fields, pos
        name, field_start, pos = new_name, pos, line_end
    close(limit)
    return fields, limit


def _latin(text: str) -> str:
    """One character per original octet: ``email`` would turn escaped octets into U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _unlatin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


def parse_params(header: str, value: str) -> tuple[str, Params, Params]:
    """Parse a Content-Type/Content-Disposition value with ``email`` (RFC 2045, RFC 2231).

    Returns ``(main value lower-cased, decoded params, wire params)``. Decoded params have
    RFC 2231 continuations joined and charsets applied (``filename`` -> ``"€.pdf"``); wire
    params keep an extended parameter in its ASCII RFC 2231 form (``filename*`` ->
    ``"utf-8''%E2%82%AC.pdf"``), continuations joined, as Dovecot sends them in BODYSTRUCTURE.
    Names are lower-case in both.
    """
    message = Message()
    message[header] = _latin(value)
    try:
        items = message.get_params(header=header) or []
    except Exception:  # malformed parameters: keep the main value only
        items = [(_latin(value).split(";", 1)[0], "")]
    if not items:
        return "", (), ()
    main = _unlatin(str(items[0][0])).strip().lower()
    decoded: list[tuple[str, str]] = []
    wire: list[tuple[str, str]] = []
    for name, param in items[1:]:
        if not name:
            continue
        if isinstance(param, tuple):
            charset, language, text = param
            decoded.append((name, collapse_rfc2231_value(param, errors="replace")))
            quoted = urllib.parse.quote((text or "").encode("latin-1", "replace"), safe="")
            wire.append((name + "*", f"{charset or ''}'{language or ''}'{quoted}"))
        else:
            decoded.append((name, _unlatin(str(param))))
            wire.append((name, _unlatin(str(param))))
    return main, tuple(decoded), tuple(wire)
