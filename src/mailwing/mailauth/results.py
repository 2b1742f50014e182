"""The ``Authentication-Results`` header field (RFC 8601) and the SMTP refusal for DMARC.

Format (RFC 8601 section 2.2): ``Authentication-Results: <authserv-id>; <resinfo>; ...``,
one method result per folded line, with the properties of section 2.7 / the IANA registry:
``spf=<r> smtp.mailfrom=<domain>`` and ``spf=<r> smtp.helo=<name>`` (RFC 7208 section 9.1),
``dkim=<r> header.d=<d> header.s=<s>`` per signature (RFC 6376 section 7.x registry),
``dmarc=<r> (p=<policy> dis=<disposition>) header.from=<domain>`` (RFC 7489 section 11.2).
A value that is not an RFC 2045 token is quoted. ``none`` is written for a method that had
nothing to check; a method switched off is left out; no method at all gives no header.

Placement: directly above our own ``Received:`` and below ``Return-Path:`` (RFC 8601
section 5 treats it like a trace field added by the border MTA; ``Return-Path`` stays first
as final delivery writes it). See :class:`mailwing.mailauth.inbound.HeldMessage`.
Incoming copies of the field that claim our authserv-id are removed
(:func:`strip_forged`, RFC 8601 section 5), so a sender cannot forge our verdict.

The refusal reply lives here rather than in ``proto.smtp.replies`` only because that module
belongs to another part of the project; it should move into the catalogue (``R``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailwing.mailauth.dkim import DkimResult
from mailwing.mailauth.dmarc import DmarcResult
from mailwing.mailauth.spf import SpfResult

__all__ = ["authentication_results", "strip_forged"]

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+$")


def _value(text: str) -> str:
    if _TOKEN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authentication_results(authserv_id: str, *, spf: SpfResult | None = None,
                           helo: SpfResult | None = None,
                           dkim: Sequence[DkimResult] | None = None,
                           dmarc: DmarcResult | None = None) -> bytes:
    """The whole field, CRLF-terminated; ``b""`` when no method ran."""
    parts: list[str] = []
    if spf is not None:
        parts.append(f"spf={spf.result} smtp.mailfrom={_value(spf.domain or 'unknown')}")
    if helo is not None:
        parts.append(f"spf={helo.result} smtp.helo={_value(helo.domain or 'unknown')}")
    if dkim is not None:
        if not dkim:
            parts.append("dkim=none")
        for r in dkim:
            props = f" header.d={_value(r.domain)}" if r.domain else ""
            props += f" header.s={_value(r.selector)}" if r.selector else ""
            parts.append(f"dkim={r.result}{props}")
    if dmarc is not None:
        comment = f" (p={dmarc.policy} dis={dmarc.disposition})" if dmarc.result in (
            "pass", "fail") else ""
        target = f" header.from={_value(dmarc.domain)}" if dmarc.domain else ""
        parts.append(f"dmarc={dmarc.result}{comment}{target}")
    if not parts:
        return b""
    body = ";\r\n\t".join([authserv_id, *parts])
    return f"Authentication-Results: {body}\r\n".encode()


_FIELD = re.compile(rb"^Authentication-Results[ \t]*:[ \t\r\n]*([^;\s]+)", re.IGNORECASE)


def strip_forged(message: bytes, authserv_id: str) -> bytes:
    """``message`` without header fields ``Authentication-Results: <authserv_id>; ...``
    (folded continuation lines included); the body is untouched."""
    end = message.find(b"\r\n\r\n")
    head, rest = message[:end + 2], message[end + 2:]
    if end < 0 or b"authentication-results" not in head.lower():
        return message
    wanted = authserv_id.lower().encode()
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        m = _FIELD.match(line)
        dropping = bool(m and m.group(1).lower() == wanted)
        if not dropping:
            kept.append(line)
    return b"".join(x + b"\r\n" for x in kept) + rest
