"""Capture mode: accept every message for any address, keep it for browsing, send nothing.

What a developer testing an application's email, or a staging server that must never send
real mail, wants from a mail server (what Mailpit does): the SMTP listeners take any
recipient at any domain, with or without AUTH, and nothing is relayed or queued. Everything
lands in one catch-all account (``capture.address``, INBOX), which IMAP and POP3 serve like
any other account. With ``capture.per_recipient`` each recipient address also gets an account
of its own (made on first use, with the same password), so a test can log in as
``alice@example.com`` and see only Alice's mail. The content is stored once either way
(storage keys contents by SHA-256), so the extra copy costs a row, not the bytes.

Why accounts and not a filtered view: IMAP and POP3 then need no capture-specific code at all
(flags, UIDs, IDLE, expunge all work as for real users), and the same storage operations serve
the retention rule.

Retention (``capture.max_messages``, ``capture.max_age``) is applied to every INBOX by
:meth:`Capture.enforce_retention`, which ``mailwing serve`` runs in the background: oldest
first, by internal date.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from mailwing.config import Settings, parse_duration
from mailwing.proto.smtp.replies import R, SmtpError
from mailwing.services.passwords import hash_password, verify_password
from mailwing.services.policy import LocalRecipient
from mailwing.storage.errors import AlreadyExists, StorageError
from mailwing.storage.interface import Storage

__all__ = ["Capture", "CaptureRecipient", "apply_capture_mode", "capture_password",
           "provision"]

PASSWORD_FILE = "capture-password.txt"


@dataclass(frozen=True, slots=True)
class CaptureRecipient:
    """One RCPT in capture mode: the address as given, and the INBOXes it is stored in."""

    address: str
    targets: tuple[LocalRecipient, ...]


def apply_capture_mode(settings: Settings) -> None:
    """What capture mode implies for the rest of the configuration, applied in one place:
    no outbound worker (nothing is ever relayed), no inbound SPF/DKIM/DMARC checks or DKIM
    signing (captured mail is kept as sent), and no sender rules (an application's From: is
    whatever it is)."""
    settings.outbound.enabled = False
    settings.auth.check_spf = settings.auth.check_dkim = settings.auth.check_dmarc = False
    settings.dkim.sign = False
    settings.mail.enforce_sender = False


def capture_password(settings: Settings) -> str:
    """``capture.password``, or the one generated once into the data folder (mode 0600)."""
    if settings.capture.password:
        return settings.capture.password
    path = Path(settings.server.data_dir) / PASSWORD_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    return password


async def provision(storage: Storage, settings: Settings) -> str:
    """Make sure the catch-all account exists and takes the capture password; return it.

    Run once before the workers start. A password changed in the configuration is applied
    to the account (and so to every per-recipient account made from now on)."""
    password = capture_password(settings)
    address = settings.capture.address.lower()
    user = await storage.get_user(address)
    if user is None:
        with contextlib.suppress(AlreadyExists):  # another process made it just now
            await storage.add_user(address, hash_password(password), create_domain=True)
    elif not verify_password(user.password_hash, password):
        await storage.set_password(address, hash_password(password))
    return password


class Capture:
    """Per worker: turns RCPT addresses into capture targets, and applies retention."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings
        self._catch_all: LocalRecipient | None = None
        self._password_hash = ""

    async def _catch_all_target(self) -> LocalRecipient:
        if self._catch_all is None:
            address = self.settings.capture.address.lower()
            user = await self.storage.get_user(address)
            inbox = None if user is None else await self.storage.get_mailbox(user.id, "INBOX")
            if user is None or inbox is None:
                raise StorageError(f"the capture account {address} is missing its INBOX")
            self._password_hash = user.password_hash
            self._catch_all = LocalRecipient(user.address, user.id, inbox.id, 0)
        return self._catch_all

    async def _own_target(self, address: str) -> LocalRecipient | None:
        """The recipient's own account (made on first use), or None for a bare name."""
        if "@" not in address.strip("@"):
            return None
        user = await self.storage.get_user(address)
        if user is None:
            try:
                user, _ = await self.storage.add_user(address, self._password_hash,
                                                      create_domain=True)
            except AlreadyExists:  # another session or worker made it just now
                user = await self.storage.get_user(address)
            if user is None:
                return None
        inbox = await self.storage.get_mailbox(user.id, "INBOX")
        return None if inbox is None else LocalRecipient(user.address, user.id, inbox.id, 0)

    async def recipient(self, address: str) -> CaptureRecipient:
        """Where a message for ``address`` is kept; ``451 4.3.0`` on storage trouble."""
        try:
            targets = [await self._catch_all_target()]
            if self.settings.capture.per_recipient:
                own = await self._own_target(address)
                if own is not None and own.mailbox_id != targets[0].mailbox_id:
                    targets.append(own)
        except StorageError as exc:
            raise SmtpError(R.LOOKUP_TEMPFAIL) from exc
        return CaptureRecipient(address, tuple(targets))

    async def enforce_retention(self, now: float | None = None) -> int:
        """Expunge what ``max_messages``/``max_age`` no longer keep from every INBOX; the
        number of messages removed."""
        cfg = self.settings.capture
        if not cfg.max_messages and not cfg.max_age:
            return 0
        oldest = (now or time.time()) - parse_duration(cfg.max_age) if cfg.max_age else None
        removed = 0
        for usage in await self.storage.list_users():
            user = await self.storage.get_user(usage.address)
            inbox = None if user is None else await self.storage.get_mailbox(user.id, "INBOX")
            if inbox is None:
                continue
            entries = sorted(await self.storage.list_mail(inbox.id),
                             key=lambda e: (e.internal_date, e.uid))
            drop = {e.uid for e in entries
                    if oldest is not None and e.internal_date.timestamp() < oldest}
            keep = [e for e in entries if e.uid not in drop]
            if cfg.max_messages and len(keep) > cfg.max_messages:
                drop.update(e.uid for e in keep[: len(keep) - cfg.max_messages])
            if drop:
                removed += len(await self.storage.expunge(inbox.id, sorted(drop)))
        return removed
