"""The IMAP ENVELOPE (RFC 3501 section 7.4.2) as s-expression data.

Result: ``[date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id]``.
Strings are ``str``: the header value unfolded but NOT decoded (RFC 3501 passes RFC 2047
encoded-words through as they are); 8-bit UTF-8 headers (RFC 6532) are ``str`` too, and a value
whose octets are not valid UTF-8 is given as the original ``bytes`` (``headers.wire_text``),
which the IMAP encoder writes as a literal. A missing field is ``None``. Address lists are lists of
``[name, adl, mailbox, host]`` (adl is the source route of an obsolete route-addr,
``<@a.example,@b.example:user@host>`` -> ``"@a.example,@b.example"``, RFC 5322 section 4.4,
else ``None``); RFC 5322 group syntax becomes ``[None, None, group-name, None]`` ... members ...
``[None, None, None, None]``; a list with no address is ``None``. Sender and Reply-To default
to From when absent or empty, as RFC 3501 requires. An address without ``@`` gets host ``""``
(a string, since ``None`` would mean group syntax).

The group structure is found here (``email.utils.getaddresses`` flattens groups); each
mailbox list between group markers is parsed by ``getaddresses``, which keeps display names
raw (unquoted, encoded-words untouched).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.utils import getaddresses, unquote
from typing import Any

from mailwing.mime.headers import scan_headers, wire_text
from mailwing.mime.parts import MessagePart

__all__ = ["address_list", "envelope"]

_Address = list[str | bytes | None]
#: the obs-route of an angle address: ``<`` then ``@domain`` list then ``:``
_ROUTE = re.compile(r"<\s*(@[^:<>\"]*?)\s*:")


def envelope(msg: MessagePart | bytes) -> list[Any]:
    """ENVELOPE of a message (a parsed :class:`MessagePart` or the raw message bytes)."""
    get: Callable[[str], str | None]
    if isinstance(msg, bytes | bytearray | memoryview):
        raw = bytes(msg)
        fields, _ = scan_headers(raw, 0, len(raw))
    else:
        fields = list(msg.fields)
    first: dict[str, str] = {}
    every: dict[str, list[str]] = {}
    for f in fields:
        first.setdefault(f.key, f.value)
        every.setdefault(f.key, []).append(f.value)
    get = first.get

    def addresses(name: str) -> list[_Address] | None:
        # a repeated address field (RFC 5322 allows one) counts with all its addresses,
        # as Dovecot reads it
        values = every.get(name)
        return address_list(", ".join(values)) if values else None

    from_ = addresses("from")
    sender = addresses("sender") or from_
    reply_to = addresses("reply-to") or from_
    return [
        wire_text(get("date")),
        wire_text(get("subject")),
        from_,
        sender,
        reply_to,
        addresses("to"),
        addresses("cc"),
        addresses("bcc"),
        wire_text(get("in-reply-to")),
        wire_text(get("message-id")),
    ]


def address_list(value: str | None) -> list[_Address] | None:
    """RFC 3501 address structures for one address-list header value, or None if empty."""
    if value is None:
        return None
    out: list[_Address] = []
    for kind, text in _segments(value):
        if kind == "start":
            out.append([None, None, wire_text(_phrase(text)), None])
        elif kind == "end":
            out.append([None, None, None, None])
        else:
            out.extend(_mailboxes(text))
    return out or None


def _phrase(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return unquote(text)
    return text


def _mailboxes(text: str) -> list[_Address]:
    out: list[_Address] = []
    if not text.strip():
        return out
    adl: str | None = None
    route = _ROUTE.search(text)
    if route is not None:
        adl = "".join(route.group(1).split())
        text = text[:route.start()] + "<" + text[route.end():]
    try:
        pairs = getaddresses([text])
    except Exception:
        return out
    for name, addr in pairs:
        if not addr:
            continue
        mailbox, at, host = addr.rpartition("@")
        if not at:
            mailbox, host = addr, ""
        out.append([wire_text(name or None), adl, wire_text(mailbox), wire_text(host)])
        adl = None  # a segment holds one mailbox; the route belongs to it
    return out


def _segments(value: str) -> list[tuple[str, str]]:
    """Split an address list at top level into mailbox text and group start/end markers.

    Quoted strings, comments (nested), angle addresses and domain literals are skipped over,
    so ``:`` and ``;`` only count outside them. An unterminated group is closed at the end.
    """
    out: list[tuple[str, str]] = []
    buf: list[str] = []
    in_group = False
    quote = False
    depth = 0  # comment nesting
    closer = ""  # inside <...> or [...]
    i = 0
    while i < len(value):
        ch = value[i]
        if quote or depth:
            if ch == "\\":
                buf.append(value[i : i + 2])
                i += 2
                continue
            if quote and ch == '"':
                quote = False
            elif depth and ch == "(":
                depth += 1
            elif depth and ch == ")":
                depth -= 1
        elif closer:
            if ch == closer:
                closer = ""
        elif ch == '"':
            quote = True
        elif ch == "(":
            depth = 1
        elif ch in "<[":
            closer = ">" if ch == "<" else "]"
        elif ch == ",":
            out.append(("mailboxes", "".join(buf)))
            buf = []
            i += 1
            continue
        elif ch == ":" and not in_group:
            out.append(("start", "".join(buf)))
            in_group, buf = True, []
            i += 1
            continue
        elif ch == ";" and in_group:
            out.append(("mailboxes", "".join(buf)))
            out.append(("end", ""))
            in_group, buf = False, []
            i += 1
            continue
        buf.append(ch)
        i += 1
    out.append(("mailboxes", "".join(buf)))
    if in_group:
        out.append(("end", ""))
    return out
