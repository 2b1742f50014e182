"""IMAP URLs naming a message or a part of one (RFC 5092), as CATENATE uses them (RFC 4469).

Why here: ``APPEND ... CATENATE (URL "...")`` names data already on the server; parsing the
URL is pure syntax, so it lives in the sans-IO core and the service that resolves it
(:mod:`mailwing.services.imap_catenate`) only looks things up.

Accepted forms (RFC 5092 section 7 ``imapurl``, ``imapurl-rel``):

- absolute: ``imap://[user[;AUTH=mech]@]host[:port]/MAILBOX[;UIDVALIDITY=n]/;UID=m
  [/;SECTION=s][/;PARTIAL=o[.l]]``;
- network-path relative ``//host/...`` is treated like absolute;
- absolute-path relative ``/MAILBOX[;UIDVALIDITY=n]/;UID=m...`` (the form RFC 4469's examples
  use);
- relative to the selected mailbox: ``;UID=m[/;SECTION=s]`` (RFC 5092 section 7.2, base
  being the selected mailbox's URL).

``MAILBOX`` is percent-encoded UTF-8 (RFC 5092 section 3.2, ``enc-mailbox``); the section is
an IMAP ``section-text`` (``1.2``, ``HEADER``, ``1.TEXT``, ``HEADER.FIELDS (A B)`` with the
space percent-encoded). ``;URLAUTH=`` (RFC 4467) and searches (``?...``) are not supported:
:class:`UrlError`. Everything is bounded by the length of the URL itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from mailwing.proto.imap.fetchitems import Section, parse_section

__all__ = ["ImapUrl", "UrlError", "parse_imap_url"]

_MAX_URL = 2048
_MAILBOX_RE = re.compile(r"([^;?#]*)(?:;UIDVALIDITY=([1-9][0-9]{0,9}))?$", re.IGNORECASE)
_UID_RE = re.compile(r";UID=([1-9][0-9]{0,9})$", re.IGNORECASE)
_SECTION_RE = re.compile(r";SECTION=(.+)$", re.IGNORECASE)
_PARTIAL_RE = re.compile(r";PARTIAL=([0-9]{1,10})(?:\.([1-9][0-9]{0,9}))?$", re.IGNORECASE)


class UrlError(ValueError):
    """Not an IMAP URL this server can resolve (answered ``NO [BADURL url]``)."""


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """``mailbox`` None: the selected mailbox. ``user`` None: the logged-in user (relative)."""

    uid: int
    mailbox: str | None = None
    uidvalidity: int | None = None
    user: str | None = None
    section: Section | None = None
    partial: tuple[int, int | None] | None = None


def parse_imap_url(text: str) -> ImapUrl:
    if len(text) > _MAX_URL or not text:
        raise UrlError("empty or too long")
    if "?" in text or "#" in text or any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in text):
        raise UrlError("searches, fragments and raw spaces are not supported")
    user = None
    rest = text
    if rest.lower().startswith("imap://") or rest.startswith("//"):
        rest = rest.split("//", 1)[1]
        authority, slash, rest = rest.partition("/")
        if not slash or not authority:
            raise UrlError("no mailbox path")
        if "@" in authority:
            userinfo = authority.rsplit("@", 1)[0]
            user = unquote(userinfo.split(";", 1)[0])
            if ";" in userinfo and not userinfo.split(";", 1)[1].upper().startswith("AUTH="):
                raise UrlError("bad userinfo")
        rest = "/" + rest
    segments = rest.split("/")
    mailbox = uidvalidity = None
    if rest.startswith("/"):
        segments = segments[1:]
        at = next((i for i, seg in enumerate(segments) if seg.upper().startswith(";UID=")),
                  len(segments))
        if at == 0:
            raise UrlError("no mailbox")
        m = _MAILBOX_RE.match("/".join(segments[:at]))  # names may contain the delimiter
        segments = segments[at:]
        if m is None or not m.group(1):
            raise UrlError("bad mailbox")
        try:
            mailbox = unquote(m.group(1), errors="strict")
        except UnicodeDecodeError as exc:
            raise UrlError("mailbox name is not UTF-8") from exc
        uidvalidity = int(m.group(2)) if m.group(2) else None
    if not segments:
        raise UrlError("no UID")
    m = _UID_RE.match(segments.pop(0))
    if m is None:
        raise UrlError("no UID")
    uid = int(m.group(1))
    section = partial = None
    if segments and (sm := _SECTION_RE.match(segments[0])):
        segments.pop(0)
        try:
            section = parse_section(unquote(sm.group(1)))
        except ValueError as exc:
            raise UrlError("bad section") from exc
    if segments and (pm := _PARTIAL_RE.match(segments[0])):
        segments.pop(0)
        partial = (int(pm.group(1)), int(pm.group(2)) if pm.group(2) else None)
    if segments and segments != [""]:
        raise UrlError("unsupported URL parts")
    if mailbox is not None and mailbox.upper() == "INBOX":
        mailbox = "INBOX"
    return ImapUrl(uid, mailbox, uidvalidity, user, section, partial)
