"""The SMTP session's hook for message authentication: checks on the MX, signing on submission.

Why a held message: both results become header fields at the TOP of the stored content
(``Authentication-Results`` above our ``Received``; ``DKIM-Signature`` on outbound mail), and
both need the whole message first, while :class:`InboundMessage` streams into storage as the
body arrives. :class:`HeldMessage` keeps the trace fields and the body in memory until
:meth:`HeldMessage.release` writes ``extra fields + trace + body``; a message larger than
:data:`HOLD_LIMIT` is released unchanged as soon as it passes the limit and streams from then
on (LIMITATION: it is then stored without the header and without the DMARC action; the
bound keeps an MX session's memory at ``HOLD_LIMIT``, not ``limits.max_message_size``).

When (:func:`start_message`):

- checks: on the ``smtp`` (MX) listener, unauthenticated sessions, when any of
  ``auth.check_spf`` / ``check_dkim`` / ``check_dmarc`` is on;
- signing: authenticated sessions with at least one remote recipient and ``dkim.sign``
  (the queued content carries the signature; local copies share the same content).

Actions (:func:`finish_message`, RFC 7489 section 6.6.4 / 6.7): a DMARC failure with the
disposition ``reject`` refuses the message with ``550 5.7.1`` (nothing stored);
``quarantine`` files it into each local recipient's ``Junk`` mailbox (created when
missing). A DNS failure never loses mail: SPF/DKIM/DMARC ``temperror`` are recorded and the
message is accepted (RFC 7489 section 6.6.3 lets the receiver defer on temporary errors; we
prefer delivery plus a visible ``temperror`` to a retry loop with the sender).
SPF and DKIM are evaluated when DMARC needs them even if their own check is off; only the
checks switched on appear in the header.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from mailwing.config import Settings
from mailwing.mailauth import dmarc, spf
from mailwing.mailauth.dkim import (
    DkimResult,
    from_domain,
    sign_outbound,
    unsigned,
    verify_message,
)
from mailwing.mailauth.dns import Lookup
from mailwing.mailauth.early import EarlyChecks, checks_apply
from mailwing.mailauth.results import authentication_results, strip_forged
from mailwing.mailauth.spf import SpfResult
from mailwing.proto.smtp.replies import R, SmtpError
from mailwing.services.inbound import HEADER_LIMIT, InboundMessage
from mailwing.services.policy import LocalRecipient
from mailwing.storage.errors import AlreadyExists
from mailwing.storage.interface import Storage

__all__ = ["HOLD_LIMIT", "HeldMessage", "Verdict", "finish_message", "run_checks",
           "start_message"]

log = logging.getLogger("mailwing.mailauth")

HOLD_LIMIT = 32 * 1024 * 1024
JUNK = "Junk"


class HeldMessage(InboundMessage):
    """An :class:`InboundMessage` that writes nothing until :meth:`release` (see module)."""

    def __init__(self, storage: Storage, mode: str, limit: int = HOLD_LIMIT) -> None:
        super().__init__(storage)
        self.mode = mode  # "check" or "sign"
        self.limit = limit
        self._trace = b""
        self._held: list[bytes] | None = []
        self._held_size = 0

    async def begin(self, trace_fields: bytes) -> None:
        self._trace = trace_fields
        self._held, self._held_size = [], 0

    async def write(self, chunk: bytes) -> None:
        if self._held is None:
            await super().write(chunk)
            return
        self._held.append(chunk)
        self._held_size += len(chunk)
        if self._held_size > self.limit:
            log.info("message too large to hold for %s; stored without it", self.mode)
            await self.release(b"")

    @property
    def held(self) -> bytes | None:
        """The message as the client sent it, while still held (None once released)."""
        return b"".join(self._held) if self._held is not None else None

    @property
    def header_block(self) -> bytes:
        held = self.held
        if held is None:
            return super().header_block
        if held.startswith(b"\r\n"):
            return b""
        end = held.find(b"\r\n\r\n", 0, HEADER_LIMIT)
        return held[:end + 2] if end >= 0 else held[:HEADER_LIMIT]

    def replace_held(self, data: bytes) -> None:
        """Swap the held message for ``data`` (e.g. with forged fields removed)."""
        if self._held is not None:
            self._held, self._held_size = [data], len(data)

    async def release(self, fields: bytes) -> None:
        """Start the real content: ``Return-Path``, ``fields``, ``Received``, the held body
        (``Return-Path`` stays first, as final delivery puts it; ``fields`` sit above the
        ``Received`` of the hop that made them, RFC 8601 section 5 / RFC 6376 section 5.6)."""
        held, self._held = self._held, None
        if held is None:
            return
        trace = self._trace
        split = trace.find(b"\r\n") + 2 if trace.startswith(b"Return-Path:") else 0
        await super().begin(trace[:split] + fields + trace[split:])
        for chunk in held:
            await super().write(chunk)

    async def abort(self) -> None:
        self._held = None
        await super().abort()

    async def commit(self, *args: Any, **kwargs: Any) -> Any:
        await self.release(b"")
        return await super().commit(*args, **kwargs)


def start_message(storage: Storage, settings: Settings, *, listener: str, user: str | None,
                  recipients: Sequence[object]) -> InboundMessage:
    """The message object for a new DATA/BDAT transfer: held when checks or signing apply."""
    if checks_apply(settings, listener=listener, user=user):
        return HeldMessage(storage, "check")
    if user is not None and settings.dkim.sign and any(
            not isinstance(r, LocalRecipient) for r in recipients):
        return HeldMessage(storage, "sign")
    return InboundMessage(storage)


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    header: bytes  # Authentication-Results field (b"" when no check ran)
    disposition: str  # none, quarantine, reject
    from_domain: str = ""


def _outcome(task: asyncio.Task[Any] | None, late: Any) -> Any:
    """A finished task's result; ``late`` when it did not finish in time (it is cancelled)."""
    if task is None:
        return None
    if not task.done():
        task.cancel()
        return late
    if task.cancelled():
        return late
    return task.result()


async def run_checks(settings: Settings, hostname: str, message: bytes, *, client_ip: str,
                     helo: str, mail_from: str, early: EarlyChecks | None = None) -> Verdict:
    """SPF (MAIL FROM and HELO), DKIM and DMARC for one message (RFC 7208, 6376, 7489).

    ``early`` holds the session's SPF evaluations, started at MAIL FROM (HELO: once per
    session); without it (or for another sender) they start here. Everything together waits
    at most ``auth.check_timeout`` seconds; a check still waiting then is ``temperror``
    (RFC 7208 section 4.6.4; RFC 7489 section 6.6.3 for DMARC).

    Why no task for an unsigned message's DKIM (its result is known: none) and none for
    DMARC (a deadline around the call instead of ``wait_for``): each task costs trips
    through the event loop, and behind each trip wait the other sessions' ready callbacks.
    With the answers cached and the SPF tasks done (the common case on an MX), this
    coroutine finishes without suspending at all (issue #9: per-message latency)."""
    a = settings.auth
    loop = asyncio.get_running_loop()
    deadline = loop.time() + a.check_timeout
    lookup = Lookup.from_settings(settings)
    want_spf, want_dkim = a.check_spf or a.check_dmarc, a.check_dkim or a.check_dmarc
    spf_task = helo_task = None
    if want_spf:
        spf_task = early.mailfrom_task(mail_from, helo) if early is not None else None
        if spf_task is None:
            spf_task = asyncio.ensure_future(
                spf.check_mailfrom(lookup, client_ip, mail_from, helo))
    if a.check_spf and mail_from:
        helo_task = (early.helo(helo) if early is not None else
                     asyncio.ensure_future(spf.check_helo(lookup, client_ip, helo)))
    dkim_task = (asyncio.ensure_future(verify_message(message, settings))
                 if want_dkim and not unsigned(message) else None)
    pending = [t for t in (spf_task, helo_task, dkim_task) if t is not None and not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
    late = "no answer within auth.check_timeout"
    spf_result: SpfResult | None = _outcome(spf_task, SpfResult(
        "temperror", spf.mailfrom_domain(mail_from, helo), late))
    helo_result: SpfResult | None = _outcome(helo_task, SpfResult("temperror", helo.lower(),
                                                                   late))
    dkim_results: list[DkimResult] = _outcome(
        dkim_task, [DkimResult("temperror", "", "", late)]) or []
    domain = from_domain(message.split(b"\r\n\r\n", 1)[0] + b"\r\n")
    dmarc_result = None
    if a.check_dmarc:
        try:
            async with asyncio.timeout_at(deadline):
                dmarc_result = await dmarc.evaluate(lookup, domain, spf_result, dkim_results)
        except TimeoutError:
            dmarc_result = dmarc.DmarcResult("temperror", domain or "", reason=late)
    header = authentication_results(
        hostname, spf=spf_result if a.check_spf else None, helo=helo_result,
        dkim=dkim_results if a.check_dkim else None, dmarc=dmarc_result)
    return Verdict(header, dmarc_result.disposition if dmarc_result else "none", domain or "")


async def _junk(storage: Storage, recipients: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for r in recipients:
        if isinstance(r, LocalRecipient):
            box = await storage.get_mailbox(r.user_id, JUNK)
            if box is None:
                try:
                    box = await storage.create_mailbox(r.user_id, JUNK, "\\Junk")
                except AlreadyExists:
                    box = await storage.get_mailbox(r.user_id, JUNK)
            if box is not None:
                r = dataclasses.replace(r, mailbox_id=box.id)
        out.append(r)
    return out


async def finish_message(storage: Storage, settings: Settings, hostname: str,
                         message: InboundMessage, recipients: Sequence[Any], *,
                         client_ip: str, helo: str, sender: str,
                         early: EarlyChecks | None = None) -> Sequence[Any]:
    """At the end of DATA, before the commit: sign or check, write the held message, and
    return the recipients to commit to (Junk mailboxes for a quarantined message). Raises
    :class:`SmtpError` (550 5.7.1) for a DMARC reject; the caller then aborts."""
    if not isinstance(message, HeldMessage) or message.held is None:
        return recipients
    body = message.held
    if message.mode == "sign":
        try:
            field = await asyncio.to_thread(sign_outbound, body, sender, settings)
        except Exception:  # a broken key must not lose the message: send it unsigned
            log.exception("DKIM signing failed; message queued unsigned")
            field = b""
        await message.release(field)
        return recipients
    try:
        verdict = await run_checks(settings, hostname, body, client_ip=client_ip, helo=helo,
                                   mail_from=sender, early=early)
    except Exception:  # a bug in a check must not lose mail: store it unchecked
        log.exception("authentication checks failed; message stored without results")
        verdict = Verdict(b"", "none")
    if verdict.disposition == "reject":
        raise SmtpError(R.dmarc_rejected(verdict.from_domain))
    if verdict.header:
        message.replace_held(strip_forged(body, hostname))
    await message.release(verdict.header)
    if verdict.disposition == "quarantine":
        return await _junk(storage, recipients)
    return recipients
