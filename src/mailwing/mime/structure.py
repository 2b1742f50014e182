"""BODY and BODYSTRUCTURE (RFC 3501 section 7.4.2) as s-expression data.

Data: ``str``, ``int``, ``None`` (NIL) and nested ``list`` (parenthesised lists); the IMAP
encoder of the session turns them into strings/literals, numbers and ``NIL``.

Field order, per RFC 3501:

- basic part: type, subtype, params, id, description, encoding, size
- ``text/*``: ... size, lines
- ``message/rfc822``: ... size, envelope, body (recursively), lines
- extension data (BODYSTRUCTURE only): md5, disposition, language, location
- multipart: each child, then subtype; extension data: params, disposition, language,
  location.

Case: type, subtype, encoding, parameter names and the disposition type are sent upper-case, as
the examples of RFC 3501 show them (``("TEXT" "PLAIN" ("CHARSET" "US-ASCII") ...``); parameter
values keep their case. Clients compare these case-insensitively. Parameter lists are flat
``[NAME, value, ...]`` or ``None``; RFC 2231 extended parameters keep their ASCII form
(``FILENAME*`` ``utf-8''%E2%82%AC.pdf``) so nothing non-ASCII reaches the wire unasked. Text
from the message is ``str``, or the original ``bytes`` when it is not valid UTF-8
(``headers.wire_text``). Disposition is ``[TYPE, params-or-None]`` or ``None``; language is a
string for one tag, a list for several, ``None`` for none.
"""

from __future__ import annotations

from typing import Any

from mailwing.mime.envelope import envelope
from mailwing.mime.headers import Params, wire_text
from mailwing.mime.parts import MessagePart

__all__ = ["bodystructure"]


def bodystructure(msg: MessagePart, extended: bool = True) -> list[Any]:
    """BODYSTRUCTURE (``extended=True``) or BODY (``extended=False``) of a parsed part."""
    if msg.children:
        out: list[Any] = [bodystructure(child, extended) for child in msg.children]
        out.append(msg.subtype.upper())
        if extended:
            out.append(_params(msg.wire_params))
            out.extend(_common_extension(msg))
        return out
    out = [
        msg.maintype.upper(),
        msg.subtype.upper(),
        _params(msg.wire_params),
        wire_text(msg.id),
        wire_text(msg.description),
        wire_text(msg.encoding),
        msg.size,
    ]
    if msg.message is not None:
        out += [envelope(msg.message), bodystructure(msg.message, extended), msg.lines]
    elif msg.maintype == "text":
        out.append(msg.lines)
    if extended:
        out.append(wire_text(msg.md5))
        out.extend(_common_extension(msg))
    return out


def _params(params: Params) -> list[str | bytes | None] | None:
    flat: list[str | bytes | None] = []
    for name, value in params:
        flat += [wire_text(name.upper()), wire_text(value)]
    return flat or None


def _common_extension(msg: MessagePart) -> list[Any]:
    disposition = None
    if msg.disposition:
        disposition = [wire_text(msg.disposition.upper()), _params(msg.disposition_wire_params)]
    language: str | bytes | list[str | bytes | None] | None = None
    if len(msg.language) == 1:
        language = wire_text(msg.language[0])
    elif msg.language:
        language = [wire_text(tag) for tag in msg.language]
    return [disposition, language, wire_text(msg.location)]
