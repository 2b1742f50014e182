"""Delivery status notifications (bounces) for recipients that failed for good, RFC 3464.

Why hand-written MIME and not ``email.message``: a DSN has a fixed, small shape and must be
CRLF-exact and 7-bit safe; writing the lines ourselves keeps it deterministic. The message is
``multipart/report; report-type=delivery-status`` (RFC 6522) with three parts:

1. ``text/plain``: what happened, for a person;
2. ``message/delivery-status`` (RFC 3464 section 2): per-message fields ``Reporting-MTA``,
   ``Arrival-Date``, then per recipient ``Final-Recipient``, ``Action: failed``, ``Status``
   (the RFC 3463 code from the reply, else derived from its class), ``Remote-MTA`` when a
   remote host answered, ``Diagnostic-Code: smtp; <the reply>``;
3. ``text/rfc822-headers``: the original's header block (not its body: RFC 3462 allows this,
   and it keeps a bounce of a large message small).

It is sent from the null reverse-path ``<>`` (RFC 5321 section 4.5.5), and a message whose
own sender is ``<>`` never gets one (:func:`bounce_for` returns None): no bounce loops.
Where it goes: to a local sender's INBOX in the same transaction that settles the failure,
or, for a remote sender, into the queue as a new message from ``<>``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate

from mailwing.config import Settings
from mailwing.services.policy import is_local_domain
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import Bounce, Delivery, Outbound, QueuedMessage, Storage

__all__ = ["Failure", "bounce_for", "build_dsn", "header_block", "status_of"]

_STATUS = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")
_HEADER_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Failure:
    address: str
    reply: str  # "550 5.1.1 no such user" (remote) or our own reason in the same form
    remote_mta: str = ""


def status_of(reply: str) -> str:
    """The RFC 3463 status of a reply: its enhanced code, else one from its class."""
    match = _STATUS.match(reply)
    if match:
        return match[1]
    return "5.0.0" if reply[:1] == "5" else "4.4.7"  # 4.4.7: delivery time expired


def _clean(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)[:900]


def build_dsn(*, hostname: str, sender: str, queue_id: str, arrival: float,
              failures: Sequence[Failure], original_headers: bytes, now: float) -> bytes:
    boundary = f"=_mailwing_{secrets.token_hex(12)}"
    names = "\r\n".join(f"  <{_clean(f.address)}>: {_clean(f.reply)}" for f in failures)
    human = (
        f"This is the mail system at host {hostname}.\r\n\r\n"
        "Your message could not be delivered to one or more recipients. It has been\r\n"
        "returned below (headers only). The remote server's reply is quoted:\r\n\r\n"
        f"{names}\r\n"
    )
    fields = [f"Reporting-MTA: dns; {hostname}", f"X-Mailwing-Queue-ID: {queue_id}",
              f"Arrival-Date: {formatdate(arrival)}"]
    for f in failures:
        fields.append("")
        fields.append(f"Final-Recipient: rfc822; {_clean(f.address)}")
        fields.append("Action: failed")
        fields.append(f"Status: {status_of(f.reply)}")
        if f.remote_mta:
            fields.append(f"Remote-MTA: dns; {_clean(f.remote_mta)}")
        fields.append(f"Diagnostic-Code: smtp; {_clean(f.reply)}")
    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{_clean(sender)}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {formatdate(now)}",
        f"Message-ID: <{queue_id}.{secrets.token_hex(6)}@{hostname}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 section 5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    original = original_headers.rstrip(b"\r\n") + b"\r\n"
    parts = [
        "\r\n".join(headers).encode() + b"\r\n\r\nThis is a MIME-encapsulated message.\r\n",
        f"--{boundary}\r\nContent-Description: Notification\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{human}".encode(),
        f"--{boundary}\r\nContent-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n".encode()
        + "\r\n".join(fields).encode() + b"\r\n",
        f"--{boundary}\r\nContent-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n".encode() + original,
        f"--{boundary}--\r\n".encode(),
    ]
    # Each part ends with a line break of its own; the CRLF before a boundary belongs to it.
    return b"".join(p.rstrip(b"\r\n") + b"\r\n\r\n" for p in parts[:-1]) + parts[-1]


async def header_block(storage: Storage, sha256: str) -> bytes:
    """The header block of a stored content (at most 64 KiB)."""
    head = b""
    try:
        async for chunk in storage.open_content(sha256, chunk_size=16 * 1024):
            head += chunk
            end = head.find(b"\r\n\r\n")
            if end >= 0:
                return head[:end + 2]
            if len(head) >= _HEADER_LIMIT:
                break
    except NotFound:
        return b""
    return head[:_HEADER_LIMIT]


async def bounce_for(storage: Storage, settings: Settings, message: QueuedMessage,
                     failures: Sequence[Failure], *, now: float,
                     new_id: str) -> Bounce | None:
    """The DSN for ``failures`` and where it goes, or None (null sender; unknown local
    sender: there is nobody to tell)."""
    sender = message.sender
    if not sender or not failures:
        return None
    hostname = settings.server.hostname
    dsn = build_dsn(hostname=hostname, sender=sender, queue_id=message.queue_id,
                    arrival=message.created_at, failures=failures,
                    original_headers=await header_block(storage, message.content.sha256),
                    now=now)
    domain = sender.rpartition("@")[2]
    if await is_local_domain(storage, settings, domain):
        user = await storage.get_user(sender)
        inbox = await storage.get_mailbox(user.id, "INBOX") if user is not None else None
        if inbox is None:
            return None
        content = await storage.store_content(b"Return-Path: <>\r\n" + dsn)
        return Bounce(content, deliveries=(Delivery(inbox.id),))
    content = await storage.store_content(dsn)
    return Bounce(content, outbound=Outbound(new_id, "", (sender,), now))
