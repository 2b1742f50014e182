"""Decoded part contents for IMAP BINARY (RFC 3516 sections 4.1-4.3).

Why: ``FETCH BINARY[1]`` returns a part's content with its Content-Transfer-Encoding undone,
so a client gets attachment bytes without base64 bloat, and ``BINARY.SIZE[1]`` its decoded
size. ``7BIT``, ``8BIT`` and ``BINARY`` are identity; ``BASE64`` and ``QUOTED-PRINTABLE`` are
decoded (characters outside the base64 alphabet are ignored, RFC 2045 section 6.8); any other
encoding (``x-uuencode``...) is :class:`UnknownCte`, answered ``NO [UNKNOWN-CTE]``.
``BINARY[]`` (no part) is the whole message as stored; a multipart or ``message/rfc822``
part carries no encoding of its own and is returned as it is.

Input is the CRLF form of the message and its :func:`mailwing.mime.parse` tree.
"""

from __future__ import annotations

import binascii

from mailwing.mime.parts import MessagePart
from mailwing.mime.sections import find_part

__all__ = ["UnknownCte", "decode_part"]

_IDENTITY = frozenset({"7BIT", "8BIT", "BINARY"})
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_B64_JUNK = bytes(b for b in range(256) if b not in _B64_ALPHABET)


class UnknownCte(ValueError):
    """The part's Content-Transfer-Encoding is not one this server can decode."""


def decode_part(raw: bytes, msg: MessagePart, part: tuple[int, ...]) -> bytes | None:
    """The decoded content of ``part`` (None: no such part); raises :class:`UnknownCte`."""
    if not part:
        return raw[msg.header_start:msg.body_end]
    selected = find_part(msg, part)
    if selected is None:
        return None
    body = raw[selected.header_end:selected.body_end]
    if selected.children or selected.message is not None:
        return body
    encoding = (selected.encoding or "7BIT").upper()
    if encoding in _IDENTITY:
        return body
    if encoding == "BASE64":
        cleaned = body.translate(None, _B64_JUNK)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]  # a lone trailing sextet carries no whole octet
        try:
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
        except binascii.Error as exc:
            raise UnknownCte("undecodable base64") from exc
    if encoding == "QUOTED-PRINTABLE":
        return binascii.a2b_qp(body)
    raise UnknownCte(encoding)
