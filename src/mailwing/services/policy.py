"""Who may send what to whom: the SMTP relay, recipient and sender decisions.

Why a service: the SMTP core only knows the dialogue; whether ``bob@example.org`` is ours,
exists, has room, or whether an authenticated user may use a sender address needs storage
and settings, and the answers are the same for every listener. Each check returns what the
session hands back to the core, or raises :class:`SmtpError` carrying the reply from the
SMTP catalogue (``proto.smtp.replies``), so no reply text is written here.

Rules (RFC 5321 section 3.6 and 7.1; RFC 6409 section 6.1 for submission):

- A recipient is *local* when its domain is in the database (``lookup_recipient``) or in
  ``mail.local_domains``; its user must exist (``550 5.1.1``). ``<postmaster>`` without a
  domain (RFC 5321 section 4.5.1) means ``postmaster@<server hostname>``.
- A remote recipient of an authenticated session becomes a :class:`RemoteRecipient` (queued
  for the outbound worker, :mod:`mailwing.queue`) when ``outbound.enabled``; with outbound
  delivery disabled it is refused with ``550 5.7.1``, so nothing is ever accepted and then
  silently dropped. Unauthenticated: ``554 5.7.1`` relay denied (never an open relay).
- A local user already at or over quota (or that the declared SIZE would take past it) is
  refused at RCPT with ``552 5.2.2`` (RFC 3463: mailbox full), that recipient only.
- Authenticated sessions (every submission session; an MX session only if the client chose
  to AUTH) with ``mail.enforce_sender``: the envelope sender and every From: address must be
  the user's own address (``553 5.7.1``); the null sender is refused.
- Storage trouble during a lookup becomes ``451 4.3.0``: try again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import HeaderParser
from email.utils import getaddresses

from mailwing.config import Settings
from mailwing.proto.smtp.commands import Address, Mail
from mailwing.proto.smtp.replies import R, SmtpError
from mailwing.storage.errors import StorageError
from mailwing.storage.interface import Storage

__all__ = ["LocalRecipient", "RemoteRecipient", "check_from_header", "check_recipient",
           "check_sender", "is_local_domain"]


@dataclass(frozen=True, slots=True)
class LocalRecipient:
    """A recipient we deliver to: the user's INBOX."""

    address: str
    user_id: int
    mailbox_id: int
    quota_bytes: int  # 0: unlimited


@dataclass(frozen=True, slots=True)
class RemoteRecipient:
    """A recipient in another domain: the message is queued for it."""

    address: str


def _configured_domains(settings: Settings) -> set[str]:
    return {d.lower().rstrip(".") for d in settings.mail.local_domains}


async def is_local_domain(storage: Storage, settings: Settings, domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    if domain in _configured_domains(settings):
        return True
    return await storage.get_domain(domain) is not None


async def check_recipient(storage: Storage, settings: Settings, recipient: Address, *,
                          authenticated: bool, size: int | None = None,
                          ) -> LocalRecipient | RemoteRecipient:
    """The local mailbox or the remote address for ``recipient``, or :class:`SmtpError`
    with the refusal. ``size`` is the RFC 1870 ``SIZE=`` the client declared: a local user
    that it would take past the quota is refused now, this recipient only."""
    address = recipient.text
    if address.lower() == "postmaster":
        address = f"postmaster@{settings.server.hostname}"
    domain = address.rpartition("@")[2].lower().rstrip(".")
    try:
        # One read answers domain, user, INBOX and usage (one thread hop on SQLite, one
        # statement on PostgreSQL) instead of four: RCPT is on every message's path.
        found = await storage.lookup_recipient(address)
        if found is None and domain not in _configured_domains(settings):
            if not authenticated:
                raise SmtpError(R.RELAY_DENIED)
            if not settings.outbound.enabled:
                raise SmtpError(R.OUTBOUND_UNAVAILABLE)
            return RemoteRecipient(address)
        if found is None or found.user_id is None or found.inbox_id is None:
            raise SmtpError(R.UNKNOWN_USER)
        if found.quota_bytes > 0:
            used = found.used_bytes
            if used >= found.quota_bytes or used + (size or 0) > found.quota_bytes:
                raise SmtpError(R.MAILBOX_FULL)
    except StorageError as exc:
        raise SmtpError(R.LOOKUP_TEMPFAIL) from exc
    return LocalRecipient(found.address, found.user_id, found.inbox_id, found.quota_bytes)


def check_sender(settings: Settings, mail: Mail, user: str | None) -> None:
    """Refuse an envelope sender the authenticated ``user`` may not use."""
    if user is None or not settings.mail.enforce_sender:
        return
    if mail.sender.is_null:
        raise SmtpError(R.NULL_SENDER_REFUSED)
    if mail.sender.text.lower() != user.lower():
        raise SmtpError(R.SENDER_NOT_OWNED)


def check_from_header(settings: Settings, header_block: bytes, user: str | None) -> None:
    """Refuse a message whose From: names anyone but the authenticated ``user`` (checked at
    the end of DATA, on the header block the inbound writer kept)."""
    if user is None or not settings.mail.enforce_sender:
        return
    headers = HeaderParser().parsestr(header_block.decode("utf-8", "replace"))
    values = [str(v) for v in headers.get_all("From", [])]
    for _, addr in getaddresses(values):
        if addr.lower() != user.lower():
            raise SmtpError(R.FROM_NOT_OWNED)
