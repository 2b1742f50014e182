"""Accepting one SMTP message for local recipients: trace fields, one content, one commit.

Why here and not in ``delivery``: ``delivery.deliver_local`` gives each recipient its own
content (it adds a per-recipient ``Delivered-To``). An SMTP transaction with many local
recipients stores ONE content, with the same ``Return-Path`` and ``Received`` for everyone,
and links it into every INBOX in ONE :meth:`Storage.append` transaction (all or nothing).

- ``Return-Path`` (RFC 5321 section 4.4) carries the envelope sender, ``<>`` for bounces.
- ``Received`` (RFC 5321 section 4.4, RFC 5322 section 3.6.7): ``from`` the EHLO name and the
  client address literal, ``by`` our hostname, ``with`` the RFC 3848 protocol name (ESMTP,
  ESMTPS, ESMTPA, ESMTPSA; SMTP for HELO; UTF8SMTP* for SMTPUTF8 transactions, RFC 6531
  section 3.7.3), comments with the TLS version/cipher and the authenticated user, ``id``
  the queue id, ``for`` the recipient when there is exactly one, and the RFC 5322 date.
- Streaming: :class:`InboundMessage` writes through a :class:`ContentWriter` in blocks of
  ``FLUSH_AT`` bytes as the body arrives, so memory stays bounded for a 50 MB message, and
  keeps only the header block (up to ``HEADER_LIMIT``) for the From: check. Anything that
  ends the transaction without :meth:`InboundMessage.commit` must call ``abort``.
- Durability: :meth:`commit` returns only after ``finish`` (fsync) and ``append`` (commit);
  the SMTP ``250`` is sent after that, never before.
- Remote recipients (:class:`RemoteRecipient`, authenticated sessions only) are queued for
  the outbound worker in the SAME ``append`` transaction as the local copies
  (``Storage.append(..., outbound=...)``): one content, all recipients or none.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate

from mailwing.model import MailEntry
from mailwing.services import metrics
from mailwing.services.capture import CaptureRecipient
from mailwing.services.delivery import QuotaExceeded
from mailwing.services.policy import LocalRecipient, RemoteRecipient
from mailwing.storage.interface import ContentWriter, Delivery, Outbound, Storage

__all__ = ["FLUSH_AT", "HEADER_LIMIT", "InboundMessage", "Trace", "new_queue_id",
           "now_rfc5322", "received_header", "return_path_header"]

FLUSH_AT = 256 * 1024
HEADER_LIMIT = 64 * 1024


def new_queue_id() -> str:
    """A short unique id for logs and the Received ``id`` clause (an atom)."""
    return f"{int(time.time() * 1000) & 0xFFFFFFFFFF:010X}{secrets.token_hex(3).upper()}"


def _comment_safe(text: str) -> str:
    return "".join(ch for ch in text if ch not in "()\\\r\n\0" and (ch == " " or ch.isprintable()))


@dataclass(frozen=True, slots=True)
class Trace:
    """Everything the Received field says about the transaction."""

    client_name: str  # the EHLO/HELO argument
    client_ip: str
    hostname: str
    queue_id: str
    esmtp: bool = True
    tls: str | None = None  # "TLSv1.3:TLS_AES_256_GCM_SHA384"
    user: str | None = None
    smtputf8: bool = False
    recipient: str | None = None  # only when there is exactly one


def _protocol(t: Trace) -> str:
    base = "UTF8SMTP" if t.smtputf8 else ("ESMTP" if t.esmtp or t.tls or t.user else "SMTP")
    suffix = ("S" if t.tls else "") + ("A" if t.user else "")
    if base == "SMTP" and suffix:
        base = "ESMTP"
    return base + suffix


_date: tuple[int, str] = (-1, "")


def now_rfc5322() -> str:
    """The RFC 5322 date-time of now, local time, as ``formatdate(localtime=True)`` gives
    it, made once per second: formatting it (a local time zone look-up and formatting) was
    about 3 % of a worker's time at SMTP intake (issue #9); the text has a resolution of a
    second, so reusing it within that second changes nothing."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, formatdate(second, localtime=True))
    return _date[1]


def received_header(t: Trace, *, date: str | None = None) -> bytes:
    ip = f"IPv6:{t.client_ip}" if ":" in t.client_ip else t.client_ip
    lines = [f"Received: from {_comment_safe(t.client_name) or 'unknown'} ([{ip}])",
             f"\tby {t.hostname} (mailwing) with {_protocol(t)}"]
    if t.tls:
        version, _, cipher = t.tls.partition(":")
        lines.append(f"\t(using {_comment_safe(version)} with cipher {_comment_safe(cipher)})"
                     if cipher else f"\t(using {_comment_safe(version)})")
    if t.user:
        lines.append(f"\t(authenticated as {_comment_safe(t.user)})")
    tail = f"\tid {t.queue_id}"
    if t.recipient:
        tail += f"\r\n\tfor <{_comment_safe(t.recipient)}>"
    lines.append(f"{tail}; {date or now_rfc5322()}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def return_path_header(sender: str) -> bytes:
    return f"Return-Path: <{_comment_safe(sender)}>\r\n".encode()


class InboundMessage:
    """One message on its way into storage (see the module docstring)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._writer: ContentWriter | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.size = 0  # octets written including the trace fields
        self._head = bytearray()
        self._head_done = False

    async def begin(self, trace_fields: bytes) -> None:
        self._writer = self.storage.new_content()
        self._queue(trace_fields)

    async def write(self, chunk: bytes) -> None:
        if not self._head_done:
            self._collect_header(chunk)
        self._queue(chunk)
        if self._pending_size >= FLUSH_AT:
            await self._flush()

    @property
    def header_block(self) -> bytes:
        return bytes(self._head)

    async def abort(self) -> None:
        writer, self._writer = self._writer, None
        self._pending.clear()
        if writer is not None:
            await writer.abort()

    async def commit(self, recipients: Sequence[LocalRecipient | RemoteRecipient
                                                | CaptureRecipient], *,
                     queue_id: str = "", sender: str = "") -> list[MailEntry]:
        """Make the content durable, link it into every local recipient's INBOX and queue it
        for the remote ones (as ``queue_id`` from ``sender``), all at once. Raises
        :class:`QuotaExceeded` (the message fits no local recipient's quota and there is
        no remote one) or a storage error; nothing is stored then. SMTP has one reply per
        message, so the exact per-recipient refusal is at RCPT (with the declared SIZE,
        :func:`policy.check_recipient`); a message that fits some recipients but not others
        here goes to all of them (a soft overshoot rather than a silent loss)."""
        assert self._writer is not None, "begin() was not called"
        local = [t for r in recipients
                 for t in (r.targets if isinstance(r, CaptureRecipient) else (r,))
                 if isinstance(t, LocalRecipient)]
        remote = tuple(dict.fromkeys(r.address for r in recipients
                                     if isinstance(r, RemoteRecipient)))
        unique = list({r.mailbox_id: r for r in local}.values())
        try:
            fitting = [r for r in unique if await self._fits(r)]
            if unique and not fitting and not remote:
                raise QuotaExceeded(", ".join(r.address for r in unique) + " over quota")
            await self._flush()
            content = await self._writer.finish()
        except BaseException:
            await self.abort()
            raise
        self._writer = None
        outbound = (Outbound(queue_id or new_queue_id(), sender, remote, time.time())
                    if remote else None)
        entries = await self.storage.append(content, [Delivery(r.mailbox_id) for r in unique],
                                            outbound=outbound)
        metrics.delivered_local(len(entries))
        return entries

    async def _fits(self, r: LocalRecipient) -> bool:
        if r.quota_bytes <= 0:
            return True
        _, used = await self.storage.usage(r.user_id)
        return used + self.size <= r.quota_bytes

    # -- internals ------------------------------------------------------------------------
    def _queue(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        self.size += len(data)

    async def _flush(self) -> None:
        if self._pending and self._writer is not None:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            await self._writer.write(data)

    def _collect_header(self, chunk: bytes) -> None:
        start = max(0, len(self._head) - 3)
        self._head += chunk[: HEADER_LIMIT - len(self._head)]
        if self._head.startswith(b"\r\n"):
            end = 0
        else:
            found = self._head.find(b"\r\n\r\n", start)
            end = found + 2 if found >= 0 else -1
        if end >= 0:
            del self._head[end:]
            self._head_done = True
        elif len(self._head) >= HEADER_LIMIT:
            self._head_done = True
