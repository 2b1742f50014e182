"""A plain-text preview of a message for FETCH PREVIEW (RFC 8970).

Why here: choosing the part and decoding it is MIME work. RFC 8970 section 3 leaves the
algorithm to the server but asks for text a user would see first, in UTF-8, with no markup
and of bounded length. The choice made:

- the first ``text/plain`` leaf of the message (walking ``multipart/*`` in order, not into
  attachments: parts with ``Content-Disposition: attachment`` and ``message/rfc822`` are
  skipped); failing that the first ``text/html`` leaf, with tags, comments, ``<style>`` and
  ``<script>`` removed and character references decoded;
- transfer encoding and charset decoded (as for SEARCH BODY), quoted lines (``>``) dropped,
  runs of white space collapsed to one space;
- at most :data:`MAX_CHARS` (200) characters and never more than 256 UTF-8 octets
  (section 3.1's limit), cut on a character boundary;
- an empty string when there is no text part (FETCH answers ``PREVIEW ""``, section 3.2:
  the server found nothing to show).
"""

from __future__ import annotations

import html
import re

from mailwing.mime.parts import MessagePart
from mailwing.mime.search import _decode_charset, _decode_transfer

__all__ = ["MAX_CHARS", "MAX_OCTETS", "preview"]

MAX_CHARS = 200
MAX_OCTETS = 256
_READ_CAP = 64 * 1024  # only the start of a long part can reach the preview
_HTML_DROP = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>|<!--.*?-->")
_TAG = re.compile(r"(?s)<[^>]*>")
_SPACE = re.compile(r"\s+")


def _leaf(msg: MessagePart, subtype: str) -> MessagePart | None:
    for part in msg.walk():
        if part.message is not None or part.children:
            continue
        if (part.disposition or "").lower() == "attachment":
            continue
        if part.maintype == "text" and part.subtype == subtype:
            return part
    return None


def _text(raw: bytes, part: MessagePart) -> str:
    data = _decode_transfer(raw[part.header_end : min(part.body_end,
                                                      part.header_end + _READ_CAP)],
                            part.encoding)
    return _decode_charset(data, part.param("charset"))


def preview(raw: bytes, msg: MessagePart) -> str:
    """The preview text of a parsed message (``raw`` in CRLF form, as for sections)."""
    part = _leaf(msg, "plain")
    if part is not None:
        text = _text(raw, part)
    else:
        part = _leaf(msg, "html")
        if part is None:
            return ""
        text = html.unescape(_TAG.sub(" ", _HTML_DROP.sub(" ", _text(raw, part))))
    lines = (line for line in text.splitlines() if not line.lstrip().startswith(">"))
    text = _SPACE.sub(" ", " ".join(lines)).strip()[:MAX_CHARS].rstrip()
    while len(text.encode("utf-8", "replace")) > MAX_OCTETS:
        text = text[:-1]
    return text.encode("utf-8", "replace").decode("utf-8")
