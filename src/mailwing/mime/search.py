"""Matching helpers for IMAP SEARCH (RFC 3501 section 6.4.4).

Why here: SEARCH compares against decoded text (RFC 3501: "a case-insensitive substring
match"; RFC 2047 encoded-words in headers and quoted-printable/base64 bodies in their charset
must match what the user sees), which is MIME work, not protocol work.

- Headers: ``email.header.decode_header``/``make_header`` decode encoded-words; values are
  unfolded; raw 8-bit octets are read as UTF-8 with replacement.
- Matching uses ``str.casefold()`` on both sides, so "STRASSE" finds "Straße" and "ÄRGER"
  finds "ärger".
- ``HEADER name ""`` matches every message that has the field (RFC 3501 SEARCH HEADER).
- FROM/TO/CC/BCC match on the decoded full header text (display names and addresses).
- BODY searches the decoded text parts (``text/*``, through ``message/rfc822``, whose
  headers count as body text); TEXT searches the message's headers and that body text.
- SENTBEFORE/SENTON/SENTSINCE use the calendar date written in the Date: header, "disregarding
  time and timezone" (RFC 3501 section 6.4.4): no conversion to UTC.
"""

from __future__ import annotations

import binascii
import codecs
import datetime
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime

from mailwing.mime.headers import HeaderField, scan_headers
from mailwing.mime.parts import MessagePart

__all__ = [
    "body_text",
    "decode_value",
    "header_values",
    "matches_address_field",
    "matches_header",
    "matches_text",
    "sent_date",
]


def _fields(msg_or_raw: MessagePart | bytes) -> tuple[HeaderField, ...] | list[HeaderField]:
    if isinstance(msg_or_raw, MessagePart):
        return msg_or_raw.fields
    raw = bytes(msg_or_raw)
    return scan_headers(raw, 0, len(raw))[0]


def decode_value(value: str) -> str:
    """An unfolded header value with RFC 2047 encoded-words decoded (best effort)."""
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # bad charset or broken encoded-word: keep the raw text
        return text


def header_values(msg_or_raw: MessagePart | bytes, name: str) -> list[str]:
    """Decoded values of every field called ``name``, in message order."""
    key = name.casefold()
    return [decode_value(f.value) for f in _fields(msg_or_raw) if f.key == key]


def _contains(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


def matches_header(raw_headers: MessagePart | bytes, name: str, needle: str) -> bool:
    """SEARCH HEADER: some field ``name`` contains ``needle`` (an empty needle: field exists)."""
    return any(_contains(v, needle) for v in header_values(raw_headers, name))


def matches_address_field(msg_or_raw: MessagePart | bytes, name: str, needle: str) -> bool:
    """SEARCH FROM/TO/CC/BCC: substring of the decoded header text (names and addresses)."""
    return matches_header(msg_or_raw, name, needle)


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(b for b in range(256) if b not in _B64_ALPHABET)


def _decode_transfer(data: bytes, encoding: str) -> bytes:
    if encoding == "BASE64":
        cleaned = data.translate(None, _B64_JUNK)  # keep the alphabet only, drop padding
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]  # a lone trailing sextet carries no whole octet
        try:
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
        except binascii.Error:
            return b""
    if encoding == "QUOTED-PRINTABLE":
        try:
            return binascii.a2b_qp(data)
        except binascii.Error:
            return data
    return data


def _decode_charset(data: bytes, charset: str | None) -> str:
    name = (charset or "utf-8").strip().lower()
    if name in ("us-ascii", "ascii", ""):
        name = "utf-8"  # undeclared 8-bit text is usually UTF-8; ASCII is a subset
    try:
        codecs.lookup(name)
    except Exception:  # unknown, or not even a codec name (NUL, surrogates)
        name = "utf-8"
    try:
        return data.decode(name, "replace")
    except Exception:  # codecs that reject "replace" or misbehave
        return data.decode("utf-8", "replace")


def _header_text(msg: MessagePart) -> str:
    return "\n".join(f"{f.name}: {decode_value(f.value)}" for f in msg.fields)


def body_text(raw: bytes, msg: MessagePart) -> str:
    """Decoded text of the message body for SEARCH BODY (text parts, nested messages)."""
    chunks: list[str] = []
    for part in msg.walk():
        if part.message is not None:
            chunks.append(_header_text(part.message))
        elif not part.children and part.maintype == "text":
            data = _decode_transfer(raw[part.header_end : part.body_end], part.encoding)
            chunks.append(_decode_charset(data, part.param("charset")))
    return "\n".join(chunks)


def matches_text(raw: bytes, msg: MessagePart, needle: str) -> bool:
    """SEARCH TEXT: ``needle`` in the decoded header or body text."""
    return _contains(_header_text(msg), needle) or _contains(body_text(raw, msg), needle)


def sent_date(msg: MessagePart | bytes) -> datetime.date | None:
    """The calendar date of the Date: header as written (no time zone shift), or None."""
    values = [f.value for f in _fields(msg) if f.key == "date"]
    if not values:
        return None
    try:
        return parsedate_to_datetime(values[0]).date()
    except Exception:  # missing, malformed or out-of-range date
        return None
