"""BODY[section]<partial> octets (RFC 3501 section 6.4.5).

Part numbers follow RFC 3501: a multipart's parts are numbered 1..n; a non-multipart message
(top level or encapsulated) has only part 1, its body; a ``message/rfc822`` part's numbers
continue into the encapsulated message. ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT``
and ``TEXT`` apply to the top message (no part numbers) or to a ``message/rfc822`` part;
``MIME`` needs part numbers and returns that part's own header with its blank line.

``HEADER.FIELDS`` keeps the original field lines (folded continuations included) in message
order, names matched case-insensitively, then the blank line ``CRLF``.

A section that does not exist gives ``None``; the session answers it with an empty string
(``BODY[9] ""``), as Dovecot and Cyrus do, rather than failing the FETCH.
"""

from __future__ import annotations

from mailwing.mime.parts import MessagePart

__all__ = ["find_part", "partial", "section"]

_MESSAGE_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"})


def find_part(msg: MessagePart, part: tuple[int, ...]) -> MessagePart | None:
    """The part a numeric section specifier names, or None if there is no such part."""
    current = msg
    in_message = True  # indexing a message: a non-multipart message has a part 1
    selected = msg
    for number in part:
        if current.children:
            if not 1 <= number <= len(current.children):
                return None
            selected = current.children[number - 1]
        elif in_message and number == 1:
            selected = current
        else:
            return None
        if selected.message is not None:
            current, in_message = selected.message, True
        else:
            current, in_message = selected, False
    return selected


def section(
    raw: bytes,
    msg: MessagePart,
    part: tuple[int, ...],
    text: str | None,
    fields: tuple[str, ...] = (),
) -> bytes | None:
    """Octets of ``BODY[<part>.<text> (<fields>)]``; ``None`` if the section does not exist.

    ``text`` is None, ``"HEADER"``, ``"HEADER.FIELDS"``, ``"HEADER.FIELDS.NOT"``, ``"TEXT"``
    or ``"MIME"`` (any case).
    """
    selected = find_part(msg, part)
    if selected is None:
        return None
    spec = text.upper() if text else None
    if spec is None:
        if not part:
            return raw[msg.header_start : msg.body_end]
        return raw[selected.header_end : selected.body_end]
    if spec == "MIME":
        if not part:
            return None
        return raw[selected.header_start : selected.header_end]
    if spec not in _MESSAGE_TEXTS:
        return None
    if part:
        if selected.message is None:
            return None
        selected = selected.message
    if spec == "HEADER":
        return raw[selected.header_start : selected.header_end]
    if spec == "TEXT":
        return raw[selected.header_end : selected.body_end]
    wanted = {name.casefold() for name in fields}
    keep = spec == "HEADER.FIELDS"
    chosen = [raw[f.start : f.end] for f in selected.fields if (f.key in wanted) == keep]
    # a field cut off by the end of the data still gets its line end
    return b"".join(c if c.endswith(b"\n") else c + b"\r\n" for c in chosen) + b"\r\n"


def partial(data: bytes, start: int, length: int) -> bytes:
    """``<start.length>`` of a section (RFC 3501 section 6.4.5); past the end gives b""."""
    if start < 0 or length <= 0 or start >= len(data):
        return b""
    return data[start : start + length]
