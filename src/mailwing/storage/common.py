"""Helpers both backends share: name rules, UIDVALIDITY choice, value adapters, row mappers.

Rows come back as plain sequences in the column order of the ``*_COLUMNS`` strings below, from
either driver; the mappers normalise what the drivers return differently (SQLite gives 0/1 for
booleans, ISO text for timestamps and a space-separated string for flags; asyncpg gives bool,
datetime and a list), so every backend builds identical :mod:`mailwing.model` records.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mailwing.model import ContentInfo, Domain, HeaderFields, Mailbox, MailEntry, User, UserUsage

__all__ = [
    "CONTENT_COLUMNS",
    "DOMAIN_COLUMNS",
    "MAILBOX_COLUMNS",
    "MAIL_COLUMNS",
    "USER_COLUMNS",
    "canonical_mailbox_name",
    "choose_uidvalidities",
    "clean_flags",
    "decode_flags",
    "encode_flags",
    "iso_utc",
    "redact_url",
    "row_to_domain",
    "row_to_entry",
    "row_to_mailbox",
    "row_to_usage",
    "row_to_user",
    "split_address",
    "utcnow",
]

DOMAIN_COLUMNS = "id, name"
USER_COLUMNS = "id, address, domain_id, password_hash, enabled, quota_bytes, created_at"
#: Selected ``FROM mailboxes`` (no alias): ``subscribed`` comes from the ``subscriptions``
#: table (schema 8), not the old column of the same name, which is no longer used.
MAILBOX_COLUMNS = (
    "id, user_id, name, uidvalidity, uidnext, highestmodseq, special_use,"
    " EXISTS (SELECT 1 FROM subscriptions s"
    " WHERE s.user_id = mailboxes.user_id AND s.name = mailboxes.name)"
)
CONTENT_COLUMNS = (
    "c.sha256, c.size, c.crlf_size, c.crlf_clean,"
    " c.message_id, c.subject, c.from_addr, c.to_addr, c.cc_addr, c.date"
)
MAIL_COLUMNS = "m.id, m.mailbox_id, m.uid, m.modseq, m.internal_date, m.flags, " + CONTENT_COLUMNS

UINT32_MAX = 0xFFFFFFFF


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_utc(value: datetime) -> str:
    """A fixed-width UTC ISO 8601 form, so that text comparison orders like time does."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def encode_flags(flags: Iterable[str]) -> str:
    """SQLite's form: space-separated, sorted (IMAP flags are atoms, RFC 3501 section 9)."""
    return " ".join(sorted(flags))


_SYSTEM_FLAGS = {
    f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
}


def clean_flags(flags: Iterable[str]) -> frozenset[str]:
    """Flags as stored: system flags in their RFC 3501 (section 2.3.2) spelling, whatever case
    the client used, and never ``\\Recent``, which is a per-session property, not stored."""
    out = set()
    for flag in flags:
        low = flag.lower()
        if low != "\\recent":
            out.add(_SYSTEM_FLAGS.get(low, flag))
    return frozenset(out)


#: decoded flag sets by their SQLite text: a mailbox holds few distinct sets, and sharing one
#: frozenset per set also makes the callers' comparisons and set caches cheap. Bounded by
#: clearing (keywords are client-chosen).
_FLAG_SETS: dict[str, frozenset[str]] = {}
_CACHE_MAX = 4096


def decode_flags(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        flags = _FLAG_SETS.get(value)
        if flags is None:
            if len(_FLAG_SETS) >= _CACHE_MAX:
                _FLAG_SETS.clear()
            flags = _FLAG_SETS[value] = frozenset(value.split())
        return flags
    return frozenset(value or ())


def split_address(address: str) -> tuple[str, str]:
    """(lower-cased address, its domain); ValueError unless it looks like local@domain."""
    norm = address.strip().lower()
    local, sep, domain = norm.rpartition("@")
    if not sep or not local or not domain or any(c.isspace() for c in norm):
        raise ValueError(f"not an address: {address!r}")
    return norm, domain


def canonical_mailbox_name(name: str) -> str:
    """INBOX is case-insensitive (RFC 3501 section 5.1); every other name is exact."""
    return "INBOX" if name.upper() == "INBOX" else name


def choose_uidvalidities(counter_after: int, count: int, now: float | None = None) -> range:
    """UIDVALIDITY values for ``count`` new mailboxes (RFC 3501 section 2.3.1.1).

    ``counter_after`` is a global counter already advanced by ``count`` in the caller's
    transaction, so values never repeat within a database; they are also pushed up to at least
    the current Unix time, so a database rebuilt from scratch does not hand a client a value it
    has cached for an older mailbox. The caller stores ``range.stop - 1`` back as the counter.
    """
    first = counter_after - count + 1
    clock = int(time.time() if now is None else now)
    first = max(first, clock, 1)
    if first + count - 1 > UINT32_MAX:
        raise OverflowError("UIDVALIDITY space exhausted (32 bits)")
    return range(first, first + count)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable database url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


# -- row mappers ---------------------------------------------------------------------------
def row_to_domain(row: Sequence[Any]) -> Domain:
    return Domain(id=int(row[0]), name=str(row[1]))


def row_to_user(row: Sequence[Any]) -> User:
    return User(
        id=int(row[0]), address=str(row[1]), domain_id=int(row[2]), password_hash=str(row[3]),
        enabled=bool(row[4]), quota_bytes=int(row[5]), created_at=to_datetime(row[6]),
    )


def row_to_usage(row: Sequence[Any]) -> UserUsage:
    return UserUsage(
        address=str(row[0]), enabled=bool(row[1]), message_count=int(row[2]),
        bytes_used=int(row[3]), quota_bytes=int(row[4]),
    )


def row_to_mailbox(row: Sequence[Any]) -> Mailbox:
    return Mailbox(
        id=int(row[0]), user_id=int(row[1]), name=str(row[2]), uidvalidity=int(row[3]),
        uidnext=int(row[4]), highestmodseq=int(row[5]), special_use=row[6],
        subscribed=bool(row[7]),
    )


#: contents by their whole row: a content row never changes once stored (it is keyed by
#: its SHA-256), and every catch-up of an IMAP session maps the rows of the messages whose
#: flags changed, whose contents the process has mapped before. Equal rows give one shared
#: (immutable) record instead of two new ones and a date parse each time. Bounded by
#: clearing; the key is the full row, so a differing row is never answered from the cache.
_CONTENTS: dict[tuple[Any, ...], ContentInfo] = {}


def row_to_content(row: Sequence[Any]) -> ContentInfo:
    """From the ten :data:`CONTENT_COLUMNS`."""
    key = tuple(row[:10])
    try:
        cached = _CONTENTS.get(key)
    except TypeError:  # an unhashable driver value: map it without the cache
        return _row_to_content(row)
    if cached is None:
        if len(_CONTENTS) >= _CACHE_MAX:
            _CONTENTS.clear()
        cached = _CONTENTS[key] = _row_to_content(row)
    return cached


def _row_to_content(row: Sequence[Any]) -> ContentInfo:
    fields = HeaderFields(
        message_id=row[4], subject=row[5], from_=row[6], to=row[7], cc=row[8],
        date=None if row[9] is None else to_datetime(row[9]),
    )
    return ContentInfo(
        sha256=str(row[0]), size=int(row[1]), crlf_size=int(row[2]),
        crlf_clean=bool(row[3]), fields=fields,
    )


#: entries by their whole row, as :data:`_CONTENTS`: every IMAP session of a mailbox maps
#: the same changed rows in its catch-up (and a STORE's own rows come back to it in the
#: catch-up after it), each time with four ``int``, a date parse and a content look-up.
#: SQLite rows only (their flags are text; PostgreSQL's are a list, which cannot be a key).
_ENTRY_ROWS: dict[tuple[Any, ...], MailEntry] = {}


def row_to_entry(row: Sequence[Any]) -> MailEntry:
    """From :data:`MAIL_COLUMNS`."""
    if type(row[5]) is not str:
        return _row_to_entry(row)
    key = tuple(row)
    cached = _ENTRY_ROWS.get(key)
    if cached is None:
        if len(_ENTRY_ROWS) >= _CACHE_MAX:
            _ENTRY_ROWS.clear()
        cached = _ENTRY_ROWS[key] = _row_to_entry(row)
    return cached


def _row_to_entry(row: Sequence[Any]) -> MailEntry:
    return MailEntry(
        id=int(row[0]), mailbox_id=int(row[1]), uid=int(row[2]), modseq=int(row[3]),
        internal_date=to_datetime(row[4]), flags=decode_flags(row[5]),
        content=row_to_content(row[6:]),
    )
