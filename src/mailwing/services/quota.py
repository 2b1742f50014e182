"""Per-user storage quotas: the rules every front-end shares (CLI, IMAP, SMTP, admin API).

Why a service: the storage layer keeps the counters and checks a limit inside its
transactions (:mod:`mailwing.storage.scripts_quota`); what a limit *means* to the outside is
decided here, once:

- sizes are written ``500M``, ``2G``, ``1048576`` or ``none`` (:func:`parse_size`), binary
  units (K = 1024), as ``doveadm`` and most admin tools do;
- one quota root per user, named ``""`` (RFC 9208 section 3.2: the root every mailbox of the
  user belongs to), with the resource ``STORAGE`` in units of 1024 octets (section 5.1) and
  ``MESSAGE`` (section 5.2, the message count; reported, never limited);
- :func:`may_set_quota`: an IMAP user may not set a quota, not even lower their own, because
  the account owner is the administrator (RFC 9208 section 4.4 allows refusing SETQUOTA);
  only an administrative front-end (the CLI, the admin API) calls :func:`set_quota`;
- :func:`room_for`: whether ``size`` more octets fit a user (the SMTP RCPT and end-of-data
  checks); storing with ``enforce_quota`` is the final word under concurrency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailwing.model import User
from mailwing.storage.interface import Storage

__all__ = [
    "QUOTA_ROOT",
    "QuotaReport",
    "format_size",
    "may_set_quota",
    "parse_size",
    "quota_report",
    "room_for",
    "set_quota",
]

QUOTA_ROOT = ""
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_RE = re.compile(r"(\d+)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
MAX_QUOTA = 2**62


@dataclass(frozen=True, slots=True)
class QuotaReport:
    """What GETQUOTA says about one user: usage, and the limit (None: unlimited)."""

    messages: int
    used_bytes: int
    limit_bytes: int | None

    @property
    def storage_kib(self) -> tuple[int, int | None]:
        """RFC 9208 STORAGE usage and limit, in units of 1024 octets (usage rounded up)."""
        limit = None if self.limit_bytes is None else self.limit_bytes // 1024
        return (self.used_bytes + 1023) // 1024, limit


def parse_size(text: str) -> int | None:
    """``500M`` -> 524288000; ``none``/``unlimited``/``0`` -> None. ValueError otherwise."""
    value = text.strip()
    if value.lower() in ("none", "unlimited", "0"):
        return None
    m = _SIZE_RE.fullmatch(value)
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 500M, 2G, 1048576 or none)")
    size = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if size > MAX_QUOTA:
        raise ValueError(f"size too large: {text!r}")
    return size or None


def format_size(limit: int | None) -> str:
    """The shortest exact form: 524288000 -> ``500M``; None -> ``unlimited``."""
    if not limit:
        return "unlimited"
    for unit in ("T", "G", "M", "K"):
        if limit % _UNITS[unit] == 0:
            return f"{limit // _UNITS[unit]}{unit}"
    return str(limit)


def may_set_quota(*, administrator: bool) -> bool:
    """Only administrative front-ends set quotas; a mail user never does (see above)."""
    return administrator


async def set_quota(storage: Storage, address: str, limit_bytes: int | None) -> None:
    """Set (or with None remove) ``address``'s storage limit. NotFound, ValueError."""
    if limit_bytes is not None and not 0 <= limit_bytes <= MAX_QUOTA:
        raise ValueError("quota out of range")
    await storage.set_quota(address, limit_bytes)


async def quota_report(storage: Storage, user: User) -> QuotaReport:
    """The user's current usage (from the running counters) and limit."""
    fresh = await storage.get_user(user.address) or user
    messages, used = await storage.usage(fresh.id)
    return QuotaReport(messages, used, fresh.quota_bytes or None)


async def room_for(storage: Storage, user: User, size: int) -> bool:
    """Whether ``size`` more octets fit ``user``'s quota right now."""
    if not user.quota_bytes:
        return True
    _, used = await storage.usage(user.id)
    return used + size <= user.quota_bytes
