"""Mailboxes and messages as an administrator browses them (API and console).

Listing uses the header fields parsed once at delivery (no message is re-read to list a
mailbox). Showing one message parses it with the stdlib ``email`` package, bounded: at most
:data:`MAX_PARSE` octets are parsed and :data:`MAX_PREVIEW` characters of each body kept.
HTML bodies are sanitised with nh3 (the Rust ammonia sanitiser): no scripts, no event
handlers, no styles, no ``img``/``iframe``/``object`` at all, links only to http(s)/mailto
with ``rel="noopener noreferrer nofollow"``. The console adds a strict Content-Security-Policy
on top, so a remote image or script would not load even if one slipped through.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import nh3

from mailwing.model import Mailbox, MailEntry, User
from mailwing.services.accounts import AccountError, get_user
from mailwing.storage.interface import Storage

__all__ = [
    "MAX_PARSE",
    "MAX_PREVIEW",
    "MailboxSummary",
    "MessagePage",
    "MessagePreview",
    "delete_message",
    "find_mailbox",
    "get_entry",
    "list_mailboxes",
    "list_messages",
    "preview",
    "sanitize_html",
]

MAX_PARSE = 10 * 1024 * 1024
MAX_PREVIEW = 200_000
_TAGS = set(nh3.ALLOWED_TAGS) - {"img", "iframe", "object", "embed", "video", "audio",
                                  "picture", "source", "svg", "math", "form", "input",
                                  "button", "link", "meta", "style"}


@dataclass(frozen=True, slots=True)
class MailboxSummary:
    mailbox: Mailbox
    messages: int
    unseen: int
    bytes: int


@dataclass(frozen=True, slots=True)
class MessagePage:
    entries: list[MailEntry]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class MessagePreview:
    entry: MailEntry
    headers: list[tuple[str, str]]
    text: str  # the first text/plain part (or "" )
    html: str  # the first text/html part, sanitised (or "")
    truncated: bool


def sanitize_html(html: str) -> str:
    return str(nh3.clean(html, tags=_TAGS, url_schemes={"http", "https", "mailto"},
                         link_rel="noopener noreferrer nofollow", strip_comments=True))


async def list_mailboxes(store: Storage, address: str) -> list[MailboxSummary]:
    user = await get_user(store, address)
    out = []
    for box in await store.list_mailboxes(user.id):
        entries = await store.list_mail(box.id)
        unseen = sum(1 for e in entries if "\\Seen" not in e.flags)
        out.append(MailboxSummary(box, len(entries), unseen,
                                  sum(e.content.size for e in entries)))
    return out


async def find_mailbox(store: Storage, address: str, name: str) -> tuple[User, Mailbox]:
    user = await get_user(store, address)
    box = await store.get_mailbox(user.id, name)
    if box is None:
        raise AccountError(f"{user.address} has no mailbox {name}", "not_found")
    return user, box


async def list_messages(store: Storage, address: str, mailbox: str, *, offset: int = 0,
                        limit: int = 50) -> MessagePage:
    """Newest first (highest UID first)."""
    _, box = await find_mailbox(store, address, mailbox)
    entries = list(reversed(await store.list_mail(box.id)))
    offset = max(0, offset)
    page = entries[offset:offset + limit] if limit > 0 else entries[offset:]
    return MessagePage(page, len(entries), offset, limit)


async def get_entry(store: Storage, address: str, mailbox: str, uid: int) -> MailEntry:
    _, box = await find_mailbox(store, address, mailbox)
    for entry in await store.list_mail(box.id):
        if entry.uid == uid:
            return entry
    raise AccountError(f"no message with UID {uid} in {mailbox}", "not_found")


async def delete_message(store: Storage, address: str, mailbox: str, uid: int) -> None:
    _, box = await find_mailbox(store, address, mailbox)
    if not await store.expunge(box.id, [uid]):
        raise AccountError(f"no message with UID {uid} in {mailbox}", "not_found")


async def _head(store: Storage, sha256: str, limit: int) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    size = 0
    async for chunk in store.open_content(sha256):
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    data = b"".join(parts)
    return data[:limit], size > limit


def _text_of(part: Any) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    return content if isinstance(content, str) else ""


async def preview(store: Storage, address: str, mailbox: str, uid: int) -> MessagePreview:
    entry = await get_entry(store, address, mailbox, uid)
    raw, truncated = await _head(store, entry.content.sha256, MAX_PARSE)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    headers = []
    for name in ("From", "To", "Cc", "Subject", "Date", "Message-ID"):
        value = msg.get(name)
        if value is not None:
            headers.append((name, str(value)[:2000]))
    text = html = ""
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and not text:
            text = _text_of(part)
        elif ctype == "text/html" and not html:
            html = _text_of(part)
    truncated = truncated or len(text) > MAX_PREVIEW or len(html) > MAX_PREVIEW
    return MessagePreview(entry, headers, text[:MAX_PREVIEW],
                          sanitize_html(html[:MAX_PREVIEW]) if html else "", truncated)
