"""Building the messages of an APPEND: CATENATE parts (RFC 4469) resolved into bytes.

Why a service: a ``URL`` part names a message (or a section of one) in the user's own
mailboxes (:mod:`mailwing.proto.imap.url` parses it); looking it up needs storage and the
MIME section code, but no sockets. Rules (RFC 4469 section 3, RFC 5092):

- only the logged-in user's mailboxes can be named (a URL with another user, or naming a
  mailbox, UID or section that does not exist, or a UIDVALIDITY that does not match, is
  ``NO [BADURL url]``); a URL relative to the selected mailbox needs one to be selected;
- the section is the same as ``BODY.PEEK[section]`` (RFC 5092 section 7: fetching through a
  URL never sets \\Seen), then ``;PARTIAL=`` applies;
- the total is bounded while it is built: past ``max_size`` octets it is
  ``NO [TOOBIG]`` (RFC 4469 section 5), before more data is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailwing import mime
from mailwing.model import MailEntry, User
from mailwing.proto.common.crlf import to_crlf
from mailwing.proto.imap.commands import CatPart
from mailwing.proto.imap.url import UrlError, parse_imap_url
from mailwing.services.imap_selected import SelectedView
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import Storage

__all__ = ["CatenateError", "catenate"]


@dataclass
class CatenateError(Exception):
    """``code`` is ``BADURL <url>`` or ``TOOBIG``."""

    code: str


async def _entry(storage: Storage, user: User, view: SelectedView | None,
                 mailbox: str | None, uidvalidity: int | None, uid: int) -> MailEntry | None:
    if mailbox is None:
        if view is None:
            return None
        box_id, box_validity = view.mailbox_id, view.mailbox.uidvalidity
        if uid in view.entries and uid not in view.gone:
            entry: MailEntry | None = view.entries[uid]
            return entry if uidvalidity in (None, box_validity) else None
    else:
        box = await storage.get_mailbox(user.id, mailbox)
        if box is None:
            return None
        box_id, box_validity = box.id, box.uidvalidity
    if uidvalidity is not None and uidvalidity != box_validity:
        return None
    return next((e for e in await storage.list_mail(box_id) if e.uid == uid), None)


async def _resolve_url(storage: Storage, user: User, view: SelectedView | None,
                       url: str) -> bytes:
    bad = CatenateError(f"BADURL {url}")
    try:
        parsed = parse_imap_url(url)
    except UrlError as exc:
        raise bad from exc
    if parsed.user is not None and parsed.user.lower() != user.address.lower():
        raise bad
    entry = await _entry(storage, user, view, parsed.mailbox, parsed.uidvalidity, parsed.uid)
    if entry is None:
        raise bad
    try:
        raw = await storage.read_content(entry.content.sha256)
    except NotFound as exc:
        raise bad from exc
    if not entry.content.crlf_clean:
        raw = to_crlf(raw)
    data: bytes | None = raw
    if parsed.section is not None:
        sec = parsed.section
        data = mime.section(raw, mime.parse(raw), sec.part, sec.text, sec.fields)
        if data is None:
            raise bad
    assert data is not None
    if parsed.partial is not None:
        start, length = parsed.partial
        data = data[start:] if length is None else mime.partial(data, start, length)
    return data


async def catenate(storage: Storage, user: User, view: SelectedView | None,
                   parts: Sequence[CatPart], max_size: int) -> bytes:
    """The message the parts describe, or :class:`CatenateError`."""
    out = bytearray()
    for part in parts:
        if part.url is not None:
            data = await _resolve_url(storage, user, view, part.url)
        else:
            data = part.text or b""
        if len(out) + len(data) > max_size:
            raise CatenateError("TOOBIG")
        out += data
    return bytes(out)
