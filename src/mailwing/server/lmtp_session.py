"""The asyncio side of an LMTP session (RFC 2033): feeds the sans-IO core, delivers locally.

Why this exists: an MTA that hands mail to ``mailwing deliver`` starts a process per
message; over LMTP (Postfix ``mailbox_transport = lmtp:unix:...``, or ``mailwing deliver``
itself when the socket answers) the server that is already running delivers it. The
dialogue is :mod:`mailwing.proto.lmtp`; the delivery is :mod:`mailwing.services.delivery`,
the same steps as ``mailwing deliver``'s direct path, one :class:`LocalDelivery` per
recipient:

- RCPT resolves the user and mailbox (``XMAILBOX``, else INBOX) at once: ``550 5.1.1`` no
  such user (whatever the domain: nothing is ever relayed), ``550 5.2.0`` no such mailbox,
  ``552 5.2.2`` no room left (or less than the declared SIZE), ``451 4.3.0`` storage trouble;
  refusals carry the delivery service's own reason, as ``mailwing deliver`` prints it.
- Each recipient gets its own copy with its own ``Return-Path`` and ``Delivered-To`` (as
  ``mailwing deliver`` writes them; the MTA in front has written ``Received``), fed as the
  body arrives, in blocks of ``FLUSH_AT`` octets, so memory stays bounded; a recipient
  whose quota the body overruns is dropped at once (``552 5.2.2``), the others go on.
- After the body each copy is committed (content fsynced, the append committed) before
  the replies are queued, one per recipient in RCPT order: a ``250`` is only ever sent for
  a copy that is durable. The same user named twice gets one copy and two equal replies.
- MAIL FROM is taken as given: an LMTP client is the local MTA (the UNIX socket is
  protected by its file mode, the TCP port binds loopback only), so there is no sender
  policy, no SPF/DKIM/DMARC (the MTA checked at its own door) and no AUTH.
"""

from __future__ import annotations

import contextlib
import logging

from mailwing.proto.lmtp import LR, LmtpCore
from mailwing.proto.smtp.events import (
    BodyChunk,
    Close,
    CommandReceived,
    MailRequest,
    MessageAbort,
    MessageComplete,
    MessageStart,
    NeedData,
    RcptRequest,
    SendReply,
)
from mailwing.proto.smtp.replies import ENDINGS, R, Reply
from mailwing.server.connection import Connection
from mailwing.services import metrics
from mailwing.services.context import AppContext
from mailwing.services.delivery import (
    EmptyMessage,
    LocalDelivery,
    QuotaExceeded,
    Target,
    UnknownMailbox,
    UnknownRecipient,
    over_quota,
    resolve,
)
from mailwing.services.inbound import FLUSH_AT, new_queue_id
from mailwing.storage.errors import StorageError

__all__ = ["handle_lmtp"]


async def handle_lmtp(ctx: AppContext, conn: Connection) -> None:
    """Run one LMTP session (the ``[lmtp]`` UNIX socket and TCP listener)."""
    limits = ctx.settings.limits
    core = LmtpCore(ctx.hostname, max_message_size=limits.max_message_size,
                    max_recipients=limits.max_recipients, max_errors=limits.max_errors)
    await _LmtpSession(ctx, conn, core).run()


class _Copy:
    """One recipient's copy of the message: its delivery and, once decided, its reply."""

    __slots__ = ("delivery", "reply")

    def __init__(self, delivery: LocalDelivery) -> None:
        self.delivery = delivery
        self.reply: Reply | None = None


class _LmtpSession:
    def __init__(self, ctx: AppContext, conn: Connection, core: LmtpCore) -> None:
        self.ctx = ctx
        self.conn = conn
        self.core = core
        self._copies: dict[tuple[int, int], _Copy] = {}  # (user, mailbox) -> its copy
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._queue_id = ""

    async def run(self) -> None:
        try:
            await self.conn.serve(self._loop, protocol="LMTP", **ENDINGS)
        finally:
            await self._discard()

    async def _loop(self) -> None:
        core, conn = self.core, self.conn
        while True:
            event = core.next_event()
            match event:
                case SendReply(data=data):
                    conn.send(data)
                    if conn.full:
                        await conn.flush()
                case NeedData():
                    core.receive_data(await conn.read())  # flushes the queued replies first
                case CommandReceived(name=name):
                    conn.command(name)
                    conn.log("command", level=logging.DEBUG, command=name)
                case BodyChunk(data=data):
                    self._pending.append(data)
                    self._pending_size += len(data)
                    if self._pending_size >= FLUSH_AT:
                        await self._flush()
                case MailRequest():
                    core.mail_accepted()
                case RcptRequest():
                    await self._rcpt(event)
                case MessageStart():
                    await self._begin()
                case MessageAbort():
                    self._log_message("refused", 0)
                    await self._discard()
                case MessageComplete():
                    await self._complete(event)
                case Close():
                    await conn.flush()
                    return
                case _:  # AUTH and STARTTLS never parse in LMTP
                    raise RuntimeError(f"unexpected LMTP event {event!r}")

    # -- recipients -------------------------------------------------------------------------
    async def _rcpt(self, req: RcptRequest) -> None:
        address = req.recipient.text
        if address.lower() == "postmaster":  # RFC 5321 section 4.5.1
            address = f"postmaster@{self.ctx.settings.server.hostname}"
        reply: Reply | None = None
        try:
            target = await resolve(self.ctx.storage, address.lower(), req.mailbox)
        except UnknownRecipient as exc:
            reply = LR.unknown_user(str(exc))
        except UnknownMailbox as exc:
            reply = LR.unknown_mailbox(str(exc))
        except StorageError:
            reply = R.LOOKUP_TEMPFAIL
        else:
            declared = self.core.mail.size if self.core.mail is not None else None
            if target.room is not None and (target.room <= 0 or (declared or 0) > target.room):
                reply = LR.over_quota(str(over_quota(target)))
        if reply is not None:
            self.conn.log("recipient refused", level=logging.DEBUG, code=reply.code)
            self.core.rcpt_rejected(reply)
        else:
            self.core.rcpt_accepted(target)

    # -- the message ------------------------------------------------------------------------
    async def _begin(self) -> None:
        self._queue_id = new_queue_id()
        mail = self.core.mail
        sender = mail.sender.text if mail is not None else ""
        for target in self.core.recipients:
            assert isinstance(target, Target)
            key = (target.user_id, target.mailbox_id)
            if key in self._copies:
                continue
            copy = _Copy(LocalDelivery(self.ctx.storage, target, return_path=sender,
                                       hostname=self.ctx.hostname))
            self._copies[key] = copy
            try:
                await copy.delivery.begin()
            except StorageError as exc:
                await self._drop(copy, R.STORAGE_TEMPFAIL, exc)

    async def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        for copy in self._copies.values():
            if copy.reply is not None:
                continue
            try:
                await copy.delivery.write(data)
            except QuotaExceeded as exc:
                await self._drop(copy, LR.over_quota(str(exc)))
            except StorageError as exc:
                await self._drop(copy, R.STORAGE_TEMPFAIL, exc)

    async def _drop(self, copy: _Copy, reply: Reply, exc: Exception | None = None) -> None:
        copy.reply = reply
        if exc is not None:
            self.conn.log("storage failed", level=logging.WARNING, queue_id=self._queue_id,
                          error=str(exc))
        with contextlib.suppress(StorageError):
            await copy.delivery.abort()

    async def _complete(self, req: MessageComplete) -> None:
        await self._flush()
        delivered = 0
        for copy in self._copies.values():  # one commit per copy, each before any reply
            if copy.reply is not None:
                continue
            try:
                entry = await copy.delivery.finish()
            except EmptyMessage as exc:
                copy.reply = LR.empty_message(str(exc))
            except QuotaExceeded as exc:
                copy.reply = LR.over_quota(str(exc))
            except StorageError as exc:
                await self._drop(copy, R.STORAGE_TEMPFAIL, exc)
            else:
                copy.reply = LR.delivered(copy.delivery.target.address, entry.uid)
                delivered += 1
        metrics.delivered_local(delivered)
        replies: list[Reply] = []
        for target in req.recipients:
            reply = self._copies[(target.user_id, target.mailbox_id)].reply
            assert reply is not None
            replies.append(reply)
        self._copies.clear()
        failed = [r.code for r in replies if not r.positive]
        self._log_message("delivered" if not failed else "partly" if delivered else "refused",
                          req.size, recipients=len(replies), delivered=delivered,
                          code=failed[0] if failed else None)
        self.core.message_results(replies)

    async def _discard(self) -> None:
        """Throw away every copy not yet committed (abort, reset, dropped connection)."""
        copies = list(self._copies.values())
        self._copies.clear()
        self._pending.clear()
        self._pending_size = 0
        for copy in copies:
            with contextlib.suppress(StorageError):
                await copy.delivery.abort()

    def _log_message(self, result: str, size: int, recipients: int = 0, delivered: int = 0,
                     code: int | None = None) -> None:
        mail = self.core.mail
        sender = mail.sender.text if mail is not None else None
        self.conn.log("delivery", sender=sender, recipients=recipients, delivered=delivered,
                      size=size, queue_id=self._queue_id, result=result, code=code)
