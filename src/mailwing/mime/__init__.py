"""MIME views for IMAP FETCH and SEARCH (RFC 3501 sections 6.4.4, 6.4.5, 7.4.2), sans-IO.

Why partly hand-written: ``BODY[1.2]`` must return the exact original octets of a part, and
the stdlib ``email`` package re-serialises messages and gives no byte offsets. So a small
scanner of our own (``parts``, ``headers``) finds the header/body offsets of every part
(RFC 2046 section 5.1.1 delimiters, nested multiparts, ``message/rfc822`` parsed recursively),
and the stdlib ``email`` package does what it does well: MIME parameters with RFC 2231
decoding (``Message.get_params``), address lists (``utils.getaddresses``), encoded-words
(``header.decode_header``/``make_header``) for SEARCH, dates (``utils.parsedate_to_datetime``).
Only the standard library is imported here (tests/unit/test_architecture.py).

Contract: **input must be CRLF-normalised bytes** (use :func:`to_crlf`, the same function as
``proto.common.crlf.to_crlf``, on a message that is not ``crlf_clean``); offsets index into
those bytes and sizes/line counts are those of the CRLF form, as IMAP reports them. Nothing
here raises on malformed messages (best-effort structure, depth <= ``MAX_DEPTH``, parts <=
``MAX_PARTS``).

API:

- ``parse(raw) -> MessagePart``: the part tree. ``MessagePart`` has ``header_start``,
  ``header_end`` (body offset, after the blank line), ``body_end``, ``fields`` (``HeaderField``
  name/value/start/end), ``maintype``/``subtype`` (lower-case), ``params`` (decoded) and
  ``wire_params``, ``id``, ``description``, ``encoding`` (upper-case, default ``7BIT``),
  ``disposition`` + ``disposition_params``, ``language``, ``location``, ``md5``,
  ``children``, ``message`` (encapsulated message), ``size``, ``lines``; ``get(name)``,
  ``get_all(name)``, ``param(name)``, ``filename()``, ``walk()``.
- ``envelope(msg_or_raw) -> list``: ENVELOPE data (raw unfolded values, encoded-words not
  decoded; ``None`` for NIL).
- ``bodystructure(msg, extended=True) -> list``: BODYSTRUCTURE, or BODY with
  ``extended=False``; type names upper-case.
- ``section(raw, msg, part, text, fields=()) -> bytes | None``: BODY[section] octets; ``None``
  for a section that does not exist (the session sends ``""``). ``partial(data, start, length)``.
  ``find_part(msg, part)``.
- SEARCH: ``header_values``, ``decode_value``, ``matches_header`` (empty needle = field
  exists), ``matches_address_field``, ``body_text``, ``matches_text``, ``sent_date`` (the date
  as written, no time zone shift). Matching is ``str.casefold()`` substring.

Data types of the s-expressions (``proto.imap.wire.encode_sexp`` writes them): ``str``
(valid Unicode; 8-bit UTF-8 headers stay ``str``), ``bytes`` (only for header text whose
octets are not valid UTF-8: the original octets, sent as a literal), ``int``, ``None`` (NIL)
and ``list`` (parenthesised list). ``HeaderField.value`` itself is a ``str`` decoded with
``surrogateescape``.
"""

from mailwing.mime.envelope import address_list, envelope
from mailwing.mime.headers import HeaderField
from mailwing.mime.parts import MAX_DEPTH, MAX_PARTS, MessagePart, parse, to_crlf
from mailwing.mime.search import (
    body_text,
    decode_value,
    header_values,
    matches_address_field,
    matches_header,
    matches_text,
    sent_date,
)
from mailwing.mime.sections import find_part, partial, section
from mailwing.mime.structure import bodystructure

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "HeaderField",
    "MessagePart",
    "address_list",
    "body_text",
    "bodystructure",
    "decode_value",
    "envelope",
    "find_part",
    "header_values",
    "matches_address_field",
    "matches_header",
    "matches_text",
    "parse",
    "partial",
    "section",
    "sent_date",
    "to_crlf",
]
