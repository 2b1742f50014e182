"""The asyncio side of an SMTP session: feeds the sans-IO core and answers its requests.

Why so thin: the dialogue (RFC 5321 sequence, EHLO keywords, SIZE, PIPELINING, BDAT, AUTH
framing, the smuggling-safe DATA reader) lives in :mod:`mailwing.proto.smtp.core`; mail-flow
decisions in :mod:`mailwing.services.policy`; trace fields and the single-transaction commit
in :mod:`mailwing.services.inbound`. This module only connects them:

- Roles by listener: ``smtp`` is the MX (no AUTH needed for local recipients; AUTH is
  offered too and then relay rules follow the authenticated user, as on submission);
  ``submission`` (STARTTLS, RFC 3207) and ``smtps`` (implicit TLS, RFC 8314) require AUTH
  before MAIL.
- Replies to pipelined commands (RFC 2920) are queued on the connection
  (:meth:`Connection.send`) and written in one go whenever the core needs more input
  (:meth:`Connection.read` flushes first: RFC 2920 section 3.1's "input buffer empty") or
  with the go-ahead of a TLS upgrade: one write per command group.
- Remote recipients of authenticated sessions are queued in the commit's transaction
  (``services.inbound``); the outbound worker of this process is woken at once
  (:mod:`mailwing.queue.wakeup`), others find the message when they poll.
- The body streams into a content writer as it arrives; a refused body (``MessageAbort``),
  a dropped connection or a failure aborts the writer, so nothing is stored half. ``250``
  after DATA/BDAT LAST is written only after the commit returned (fsync + commit).
- Connection-level ends: idle timeout ``421 4.4.2``, shutdown ``421 4.3.2``, an unexpected
  exception ``421 4.3.0`` (logged, never escaping to the server layer).
- Logging: one ``message`` line per transaction (sender, recipient count, size, queue id,
  result); AUTH credentials never reach a log line.
"""

from __future__ import annotations

import contextlib
import logging

from mailwing.mailauth import inbound as mailauth
from mailwing.mailauth.early import EarlyChecks, checks_apply
from mailwing.proto.smtp.core import SmtpCore
from mailwing.proto.smtp.events import (
    AuthFailure,
    AuthRequest,
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
    StartTlsRequest,
)
from mailwing.proto.smtp.replies import ENDINGS, R, Reply, SmtpError
from mailwing.queue import wakeup
from mailwing.server.connection import Connection
from mailwing.services import policy
from mailwing.services.auth import AuthOutcome
from mailwing.services.context import AppContext
from mailwing.services.delivery import QuotaExceeded
from mailwing.services.inbound import (
    InboundMessage,
    Trace,
    new_queue_id,
    received_header,
    return_path_header,
)
from mailwing.storage.errors import StorageError

__all__ = ["SUBMISSION_LISTENERS", "handle_smtp"]

log = logging.getLogger("mailwing.session")

SUBMISSION_LISTENERS = frozenset({"submission", "smtps"})

_OUTCOMES: dict[AuthOutcome, AuthFailure] = {
    AuthOutcome.BAD_CREDENTIALS: AuthFailure.BAD_CREDENTIALS,
    AuthOutcome.DISABLED: AuthFailure.DISABLED,
    AuthOutcome.THROTTLED: AuthFailure.THROTTLED,
    AuthOutcome.TEMPFAIL: AuthFailure.TEMPFAIL,
}


async def handle_smtp(ctx: AppContext, conn: Connection) -> None:
    """Run one SMTP session (smtp, submission and smtps listeners)."""
    limits = ctx.settings.limits
    core = SmtpCore(
        ctx.hostname,
        # capture mode takes mail with or without AUTH on every listener
        auth_required=(conn.listener in SUBMISSION_LISTENERS
                       and not ctx.settings.capture.enabled),
        tls_active=conn.tls_active,
        tls_available=conn.ssl_context is not None,
        plaintext_allowed=ctx.settings.plaintext_allowed,
        max_message_size=limits.max_message_size,
        max_recipients=limits.max_recipients,
        max_errors=limits.max_errors,
        max_auth_failures=limits.max_auth_failures,
    )
    await _SmtpSession(ctx, conn, core).run()


class _SmtpSession:
    def __init__(self, ctx: AppContext, conn: Connection, core: SmtpCore) -> None:
        self.ctx = ctx
        self.conn = conn
        self.core = core
        self._message: InboundMessage | None = None
        self._queue_id = ""
        self._failed: str | None = None  # why the body cannot be stored (storage error)
        self._early: EarlyChecks | None = None  # SPF started at MAIL FROM (mailauth.early)

    async def run(self) -> None:
        try:
            await self.conn.serve(self._loop, protocol="SMTP", **ENDINGS)
        finally:
            await self._discard()
            if self._early is not None:
                self._early.close()

    async def _loop(self) -> None:
        """Pump the core's events until it closes. Why POP3 and SMTP each keep a loop of
        their own instead of one shared driver: see ``_Pop3Session._loop``."""
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
                    await self._body(data)
                case MailRequest():
                    self._mail(event)
                case RcptRequest():
                    await self._rcpt(event)
                case MessageStart():
                    await self._begin()
                case MessageAbort():
                    self._log_message("refused", 0)
                    await self._discard()
                case MessageComplete():
                    await self._complete(event)
                case AuthRequest():
                    await self._authenticate(event)
                case StartTlsRequest():
                    # "220 ready to start TLS" (and any replies queued before it) goes out
                    # once reading is paused, so a quick client's ClientHello is not taken
                    # for pipelined plaintext (see Connection.start_tls)
                    await conn.start_tls()
                    core.tls_started()
                    conn.log("tls started", cipher=conn.tls_cipher)
                case Close():
                    await conn.flush()
                    return

    # -- requests -------------------------------------------------------------------------
    def _mail(self, req: MailRequest) -> None:
        try:
            policy.check_sender(self.ctx.settings, req.mail, req.user)
        except SmtpError as exc:
            self.core.mail_rejected(exc.reply)
        else:
            self.core.mail_accepted()
            settings = self.ctx.settings
            if checks_apply(settings, listener=self.conn.listener, user=req.user):
                if self._early is None:
                    self._early = EarlyChecks(settings, self.conn.peer.ip)
                self._early.mail_from(req.mail.sender.text, self.core.client_name)

    async def _rcpt(self, req: RcptRequest) -> None:
        target: object
        try:
            if self.ctx.capture is not None:
                target = await self.ctx.capture.recipient(req.recipient.text)
            else:
                target = await policy.check_recipient(
                    self.ctx.storage, self.ctx.settings, req.recipient,
                    authenticated=req.user is not None,
                    size=self.core.mail.size if self.core.mail is not None else None)
        except SmtpError as exc:
            self.conn.log("recipient refused", level=logging.DEBUG, code=exc.reply.code)
            self.core.rcpt_rejected(exc.reply)
        else:
            self.core.rcpt_accepted(target)

    async def _authenticate(self, req: AuthRequest) -> None:
        if self.ctx.capture is not None:  # capture mode: any credentials are accepted
            self.conn.user = req.username[:256] or "anonymous"
            self.conn.log("login", mechanism=req.mechanism, tls=self.conn.tls_active,
                          capture=True)
            self.core.auth_succeeded(self.conn.user)
            return
        try:
            result = await self.ctx.auth.authenticate(req.username, req.password,
                                                      peer_ip=self.conn.peer.ip)
        except StorageError as exc:
            self.conn.log("login failed", mechanism=req.mechanism, reason=f"storage: {exc}")
            self.core.auth_failed(AuthFailure.TEMPFAIL)
            return
        if not result.ok or result.user is None:
            failure = _OUTCOMES.get(result.outcome, AuthFailure.TEMPFAIL)
            self.conn.log("login failed", mechanism=req.mechanism, reason=failure.value,
                          username=req.username[:64])
            self.core.auth_failed(failure)
            return
        self.conn.user = result.user.address
        self.conn.log("login", mechanism=req.mechanism, tls=self.conn.tls_active)
        self.core.auth_succeeded(result.user.address)

    # -- the message ----------------------------------------------------------------------
    def _trace(self) -> bytes:
        core, mail = self.core, self.core.mail
        assert mail is not None
        recipients = core.recipients
        single = recipients[0].address if len(recipients) == 1 else None  # type: ignore[attr-defined]
        trace = Trace(client_name=core.client_name, client_ip=self.conn.peer.ip,
                      hostname=self.ctx.hostname, queue_id=self._queue_id, esmtp=core.esmtp,
                      tls=self.conn.tls_cipher, user=core.user, smtputf8=mail.smtputf8,
                      recipient=single)
        return return_path_header(mail.sender.text) + received_header(trace)

    async def _begin(self) -> None:
        self._queue_id = new_queue_id()
        self._failed = None
        self._message = mailauth.start_message(  # held for DKIM/SPF/DMARC (mailauth)
            self.ctx.storage, self.ctx.settings, listener=self.conn.listener,
            user=self.core.user, recipients=self.core.recipients)
        try:
            await self._message.begin(self._trace())
        except StorageError as exc:
            await self._storage_failed(exc)

    async def _body(self, data: bytes) -> None:
        if self._message is None or self._failed:
            return
        try:
            await self._message.write(data)
        except StorageError as exc:
            await self._storage_failed(exc)

    async def _storage_failed(self, exc: StorageError) -> None:
        self._failed = str(exc)
        self.conn.log("storage failed", level=logging.WARNING, queue_id=self._queue_id,
                      error=str(exc))
        await self._discard()

    async def _complete(self, req: MessageComplete) -> None:
        message = self._message
        reply: Reply | None = None
        if message is None:
            reply = R.STORAGE_TEMPFAIL
        else:
            try:
                policy.check_from_header(self.ctx.settings, message.header_block,
                                         self.core.user)
                targets = await mailauth.finish_message(  # sign, or check + act (mailauth)
                    self.ctx.storage, self.ctx.settings, self.ctx.hostname, message,
                    req.recipients, client_ip=self.conn.peer.ip,
                    helo=self.core.client_name, sender=req.sender.text, early=self._early)
                await message.commit(targets,
                                     queue_id=self._queue_id, sender=req.sender.text)
                if any(isinstance(r, policy.RemoteRecipient) for r in req.recipients):
                    wakeup.notify()  # the outbound worker of this process, at once
            except SmtpError as exc:
                reply = exc.reply
            except QuotaExceeded:
                reply = R.QUOTA_AT_END
            except StorageError as exc:
                self._failed = str(exc)
                reply = R.STORAGE_TEMPFAIL
        await self._discard()
        if reply is None:
            self._log_message("queued", req.size, recipients=len(req.recipients))
            self.core.message_accepted(self._queue_id)
        else:
            self._log_message("rejected", req.size, recipients=len(req.recipients),
                              code=reply.code, error=self._failed)
            self.core.message_failed(reply)

    async def _discard(self) -> None:
        message, self._message = self._message, None
        if message is not None:
            with contextlib.suppress(StorageError):
                await message.abort()

    def _log_message(self, result: str, size: int, recipients: int = 0,
                     code: int | None = None, error: str | None = None) -> None:
        mail = self.core.mail
        sender = mail.sender.text if mail is not None else None
        self.conn.log("message", sender=sender, recipients=recipients, size=size,
                      queue_id=self._queue_id, result=result, code=code, error=error)

    # -- output ---------------------------------------------------------------------------
