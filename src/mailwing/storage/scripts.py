"""Every storage operation, written once as a transaction script (see :mod:`.steps`).

A script runs inside one transaction that its backend opens and commits; raising any
exception rolls it back. So "all or nothing" (an append to several mailboxes, a user with its
six default mailboxes) comes from the backend, and the rules live here:

* UIDs (RFC 3501 section 2.3.1.1) are taken from ``mailboxes.uidnext`` by an ``UPDATE ...
  RETURNING`` in the append transaction. That statement holds the mailbox row's write lock
  (PostgreSQL) or runs under SQLite's single writer lock, so concurrent deliveries from any
  number of processes get distinct, increasing UIDs, never reused after an expunge. Mailboxes
  are locked in ascending id order so that two multi-mailbox appends cannot deadlock.
* Every append or expunge raises the mailbox's HIGHESTMODSEQ by one and stamps the new entries
  (or the ``expunged`` rows kept for QRESYNC's VANISHED, RFC 7162 section 3.2.10) with it.
* Contents are linked by SHA-256. The ``contents`` row is inserted by the append that first
  needs it, after checking its bytes are still there; once no entry uses it, it is deleted in
  the transaction that removed the last entry, together with (or, for files, after) its bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from mailwing.model import (
    DEFAULT_MAILBOXES,
    ContentInfo,
    Domain,
    Mailbox,
    MailEntry,
    User,
    UserUsage,
)
from mailwing.storage.common import (
    DOMAIN_COLUMNS,
    MAIL_COLUMNS,
    MAILBOX_COLUMNS,
    USER_COLUMNS,
    canonical_mailbox_name,
    choose_uidvalidities,
    clean_flags,
    row_to_domain,
    row_to_entry,
    row_to_mailbox,
    row_to_usage,
    row_to_user,
    split_address,
    utcnow,
)
from mailwing.storage.errors import AlreadyExists, InUse, NotFound
from mailwing.storage.interface import Delivery, RecipientLookup
from mailwing.storage.migrate import Migration
from mailwing.storage.scripts_quota import Deltas, account, add_delta, entry_sizes
from mailwing.storage.steps import (
    Batch,
    Changed,
    DropBlobs,
    HasBlob,
    Script,
    Serialize,
    TableExists,
    Volatile,
    q,
)


def _by_name(item: Domain | Mailbox) -> str:
    """Sorting in Python gives one order (by code point) whatever the database collation."""
    return item.name


# -- schema ---------------------------------------------------------------------------------


def schema_version() -> Script[int]:
    if not (yield TableExists("schema_version")):
        return 0
    rows = yield q("SELECT max(version) FROM schema_version")
    return int(rows[0][0] or 0)


def upgrade(migrations: Sequence[Migration]) -> Script[tuple[int, int]]:
    yield Serialize("mailwing-schema")
    before = yield from schema_version()
    after = before
    for mig in migrations:
        if mig.version <= before:
            continue
        yield Batch(mig.sql)
        yield q(
            "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
            mig.version, mig.name, utcnow(),
        )
        after = mig.version
    return before, after


# -- domains --------------------------------------------------------------------------------


def _domain_row(name: str) -> Script[Domain | None]:
    rows = yield q(f"SELECT {DOMAIN_COLUMNS} FROM domains WHERE name = $1", name)
    return row_to_domain(rows[0]) if rows else None


def _ensure_domain(name: str) -> Script[tuple[Domain, bool]]:
    """The domain and whether this call created it (another one may have, meanwhile)."""
    rows = yield q(
        "INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
        f" RETURNING {DOMAIN_COLUMNS}", name,
    )
    if rows:
        return row_to_domain(rows[0]), True
    domain = yield from _domain_row(name)
    if domain is None:
        raise NotFound(f"domain {name} was deleted meanwhile")
    return domain, False


def add_domain(name: str) -> Script[Domain]:
    domain, created = yield from _ensure_domain(_domain_name(name))
    if not created:
        raise AlreadyExists(f"domain {domain.name} exists already")
    return domain


def get_domain(name: str) -> Script[Domain | None]:
    return (yield from _domain_row(_domain_name(name)))


def list_domains() -> Script[list[Domain]]:
    rows = yield q(f"SELECT {DOMAIN_COLUMNS} FROM domains")
    return sorted((row_to_domain(r) for r in rows), key=_by_name)


def delete_domain(name: str) -> Script[None]:
    name = _domain_name(name)
    domain = yield from _domain_row(name)
    if domain is None:
        raise NotFound(f"no domain {name}")
    users = yield q("SELECT count(*) FROM users WHERE domain_id = $1", domain.id)
    if users[0][0]:
        raise InUse(f"domain {name} still has {users[0][0]} user(s)")
    yield q("DELETE FROM domains WHERE id = $1", domain.id)


def _domain_name(name: str) -> str:
    norm = name.strip().lower().rstrip(".")
    if not norm or "@" in norm or any(c.isspace() for c in norm):
        raise ValueError(f"not a domain name: {name!r}")
    return norm


# -- users ----------------------------------------------------------------------------------


def add_user(
    address: str, password_hash: str, quota_bytes: int, create_domain: bool
) -> Script[tuple[User, bool]]:
    address, domain_name = split_address(address)
    domain = yield from _domain_row(domain_name)
    created = False
    if domain is None:
        if not create_domain:
            raise NotFound(f"no domain {domain_name}: add it first")
        domain, created = yield from _ensure_domain(domain_name)
    rows = yield q(
        "INSERT INTO users (address, domain_id, password_hash, enabled, quota_bytes, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (address) DO NOTHING"
        f" RETURNING {USER_COLUMNS}",
        address, domain.id, password_hash, True, quota_bytes, utcnow(),
    )
    if not rows:
        raise AlreadyExists(f"user {address} exists already")
    user = row_to_user(rows[0])
    yield from _create_mailboxes(user.id, DEFAULT_MAILBOXES)
    return user, created


def _user_row(address: str) -> Script[User | None]:
    rows = yield q(
        f"SELECT {USER_COLUMNS} FROM users WHERE address = $1", address.strip().lower()
    )
    return row_to_user(rows[0]) if rows else None


def get_user(address: str) -> Script[User | None]:
    return (yield from _user_row(address))


def lookup_recipient(address: str) -> Script[RecipientLookup | None]:
    """Domain, user, INBOX and usage in one statement: the domain row drives the join, so
    "no row" means "not a domain of ours" and a row with no user means "no such user"."""
    address = address.strip().lower()
    domain = address.rpartition("@")[2].rstrip(".")
    rows = yield q(
        "SELECT u.id, u.address, u.quota_bytes, u.used_bytes, m.id FROM domains d"
        " LEFT JOIN users u ON u.address = $2 AND u.domain_id = d.id"
        " LEFT JOIN mailboxes m ON m.user_id = u.id AND m.name = 'INBOX'"
        " WHERE d.name = $1",
        domain, address,
    )
    if not rows:
        return None
    user_id, addr, quota, used, inbox = rows[0]
    if user_id is None:
        return RecipientLookup()
    return RecipientLookup(
        user_id=int(user_id), address=str(addr), inbox_id=None if inbox is None else int(inbox),
        quota_bytes=int(quota), used_bytes=int(used),
    )


def update_user(address: str, column: str, value: object) -> Script[None]:
    """``column`` comes from this package (set_password/set_enabled), never from a caller."""
    rows = yield q(
        f"UPDATE users SET {column} = $2 WHERE address = $1 RETURNING id",
        address.strip().lower(), value,
    )
    if not rows:
        raise NotFound(f"no user {address}")


def delete_user(address: str) -> Script[None]:
    user = yield from _user_row(address)
    if user is None:
        raise NotFound(f"no user {address}")
    rows = yield q(
        "SELECT DISTINCT m.content_sha256 FROM mail m JOIN mailboxes b ON b.id = m.mailbox_id"
        " WHERE b.user_id = $1", user.id,
    )
    boxes = yield q("SELECT id FROM mailboxes WHERE user_id = $1", user.id)
    yield q("DELETE FROM users WHERE id = $1", user.id)  # mailboxes and mail cascade
    if boxes:  # sessions with one selected learn that it is gone (like delete_mailbox)
        yield Changed(tuple(int(r[0]) for r in boxes))
    yield from _drop_orphans([r[0] for r in rows])


def list_users() -> Script[list[UserUsage]]:
    rows = yield q(
        "SELECT address, enabled, used_messages, used_bytes, quota_bytes FROM users"
    )
    return sorted((row_to_usage(r) for r in rows), key=lambda u: u.address)


def usage(user_id: int) -> Script[tuple[int, int]]:
    """From the running counters (:mod:`.scripts_quota`), not a sum over the mail."""
    rows = yield q("SELECT used_messages, used_bytes FROM users WHERE id = $1", user_id)
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


# -- mailboxes ------------------------------------------------------------------------------


def _create_mailboxes(
    user_id: int, specs: Sequence[tuple[str, str | None]]
) -> Script[list[Mailbox]]:
    counter = yield q(
        "UPDATE counters SET value = value + $1 WHERE name = 'uidvalidity' RETURNING value",
        len(specs),
    )
    values = choose_uidvalidities(int(counter[0][0]), len(specs))
    yield q("UPDATE counters SET value = $1 WHERE name = 'uidvalidity'", values[-1])
    made = []
    for (name, special), uidvalidity in zip(specs, values, strict=True):
        name = canonical_mailbox_name(name)
        rows = yield q(
            "INSERT INTO mailboxes (user_id, name, uidvalidity, uidnext, highestmodseq,"
            " special_use) VALUES ($1, $2, $3, 1, 1, $4)"
            " ON CONFLICT (user_id, name) DO NOTHING RETURNING id",
            user_id, name, uidvalidity, special,
        )
        if not rows:
            raise AlreadyExists(f"mailbox {name} exists already")
        # a new mailbox is subscribed (a default subscription list, RFC 3501 6.3.6)
        yield q(
            "INSERT INTO subscriptions (user_id, name) VALUES ($1, $2)"
            " ON CONFLICT (user_id, name) DO NOTHING",
            user_id, name,
        )
        box = yield q(f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1", rows[0][0])
        made.append(row_to_mailbox(box[0]))
    return made


def create_mailbox(user_id: int, name: str, special_use: str | None) -> Script[Mailbox]:
    users = yield q("SELECT id FROM users WHERE id = $1", user_id)
    if not users:
        raise NotFound(f"no user with id {user_id}")
    made = yield from _create_mailboxes(user_id, [(name, special_use)])
    return made[0]


def list_mailboxes(user_id: int) -> Script[list[Mailbox]]:
    rows = yield q(
        f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE user_id = $1", user_id
    )
    return sorted((row_to_mailbox(r) for r in rows), key=_by_name)


def get_mailbox(user_id: int, name: str) -> Script[Mailbox | None]:
    rows = yield q(
        f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE user_id = $1 AND name = $2",
        user_id, canonical_mailbox_name(name),
    )
    return row_to_mailbox(rows[0]) if rows else None


# -- mail -----------------------------------------------------------------------------------


def _link_content(content: ContentInfo) -> Script[None]:
    if not (yield HasBlob(content.sha256)):
        raise NotFound(f"content {content.sha256} is not stored (removed meanwhile?)")
    f = content.fields
    yield q(
        "INSERT INTO contents (sha256, size, crlf_size, crlf_clean, message_id, subject,"
        " from_addr, to_addr, cc_addr, date, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (sha256) DO NOTHING",
        content.sha256, content.size, content.crlf_size, content.crlf_clean, f.message_id,
        f.subject, f.from_, f.to, f.cc, f.date, utcnow(),
    )


def _allocate(mailbox_id: int, count: int) -> Script[tuple[int, int]]:
    """(first new UID, new MODSEQ) for ``count`` entries; the row stays locked until commit."""
    rows = yield q(
        "UPDATE mailboxes SET uidnext = uidnext + $2, highestmodseq = highestmodseq + 1"
        " WHERE id = $1 RETURNING uidnext - $2, highestmodseq",
        mailbox_id, count,
    )
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    yield Changed((mailbox_id,))
    return int(rows[0][0]), int(rows[0][1])


def _lock(mailbox_id: int) -> Script[None]:
    """Hold the mailbox row's write lock until commit (an empty update: PostgreSQL locks the
    row, SQLite is already in its single write transaction), so that what the script reads
    next cannot change under it. NotFound if it does not exist."""
    rows = yield q("UPDATE mailboxes SET uidnext = uidnext WHERE id = $1 RETURNING id", mailbox_id)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")


def append(content: ContentInfo, deliveries: Sequence[Delivery],
           enforce_quota: bool = False) -> Script[list[MailEntry]]:
    return (yield from append_many([(content, d) for d in deliveries], enforce_quota))


def append_many(items: Sequence[tuple[ContentInfo, Delivery]],
                enforce_quota: bool = False) -> Script[list[MailEntry]]:
    """Link each content into its mailbox, all in this transaction (RFC 3502 MULTIAPPEND:
    all or none); usage counters follow, and with ``enforce_quota`` a user pushed over quota
    fails the whole script (:class:`~mailwing.storage.errors.OverQuota`)."""
    if not items:
        return []
    counts = Counter(d.mailbox_id for _, d in items)
    next_uid: dict[int, int] = {}
    modseqs: dict[int, int] = {}
    # One lock order for every writer: the mailboxes (ascending ids), then the contents'
    # bytes (ascending digests), then the users (``account``); an expunge takes them in
    # the same order (PostgreSQL's ``expunge``), so no two scripts wait on each other in a
    # cycle (an append reusing a content and the expunge of its last entry did).
    for mailbox_id in sorted(counts):
        next_uid[mailbox_id], modseqs[mailbox_id] = yield from _allocate(
            mailbox_id, counts[mailbox_id]
        )
    for content in sorted({c.sha256: c for c, _ in items}.values(), key=lambda c: c.sha256):
        yield from _link_content(content)
    now = utcnow()
    entries = []
    deltas: Deltas = {}
    for content, d in items:
        uid = next_uid[d.mailbox_id]
        next_uid[d.mailbox_id] += 1
        entries.append((yield from _insert_entry(d, uid, modseqs[d.mailbox_id], now, content)))
        add_delta(deltas, d.mailbox_id, 1, content.size)
    yield from account(deltas, enforce=enforce_quota)
    return entries


def entry_date(internal_date: datetime | None, now: datetime) -> datetime:
    """An entry's INTERNALDATE: the one given (a naive one taken as UTC), or ``now``."""
    internal_date = internal_date or now
    if internal_date.tzinfo is None:
        internal_date = internal_date.replace(tzinfo=UTC)
    return internal_date


def _insert_entry(
    d: Delivery, uid: int, modseq: int, now: datetime, content: ContentInfo
) -> Script[MailEntry]:
    internal_date = entry_date(d.internal_date, now)
    flags = clean_flags(d.flags)
    rows = yield q(
        "INSERT INTO mail (mailbox_id, uid, modseq, internal_date, flags, content_sha256)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        d.mailbox_id, uid, modseq, internal_date, flags, content.sha256,
    )
    return MailEntry(
        id=int(rows[0][0]), mailbox_id=d.mailbox_id, uid=uid, modseq=modseq,
        internal_date=internal_date, flags=flags, content=content,
    )


def list_mail(mailbox_id: int) -> Script[list[MailEntry]]:
    rows = yield q(
        f"SELECT {MAIL_COLUMNS} FROM mail m JOIN contents c ON c.sha256 = m.content_sha256"
        " WHERE m.mailbox_id = $1 ORDER BY m.uid", mailbox_id,
    )
    return [row_to_entry(r) for r in rows]


def expunge(mailbox_id: int, uids: Collection[int], volatile: bool = False
            ) -> Script[list[int]]:
    """Remove those entries; ``volatile``: the commit need not wait for the disk (a lost
    expunge brings the messages back, it never loses one; see :class:`.steps.Volatile`)."""
    if volatile:
        yield Volatile()
    wanted = sorted({int(u) for u in uids})
    if not wanted:
        return []
    found = yield q(
        "SELECT uid FROM mail WHERE mailbox_id = $1 AND uid @IN($2)", mailbox_id, wanted
    )
    if not found:
        return []  # nothing to do: HIGHESTMODSEQ stays
    _, modseq = yield from _allocate(mailbox_id, 0)  # lock the mailbox, then delete
    rows = yield from _remove_entries(mailbox_id, sorted(int(r[0]) for r in found), modseq)
    yield from _drop_orphans([r[1] for r in rows])
    return sorted(int(r[0]) for r in rows)


def _remove_entries(mailbox_id: int, uids: list[int], modseq: int,
                    deltas: Deltas | None = None) -> Script[list[list]]:
    """Delete those entries, keeping an ``expunged`` row stamped ``modseq`` for each; return
    (uid, content_sha256) of the rows removed. The caller holds the mailbox lock. The usage
    counters follow at once, or are added to ``deltas`` for the caller to apply."""
    count, size = yield from entry_sizes(mailbox_id, uids)
    if deltas is None:
        yield from account({mailbox_id: (-count, -size)})
    else:
        add_delta(deltas, mailbox_id, -count, -size)
    yield q(
        "INSERT INTO expunged (mailbox_id, uid, modseq) SELECT mailbox_id, uid, $3 FROM mail"
        " WHERE mailbox_id = $1 AND uid @IN($2)", mailbox_id, uids, modseq,
    )
    rows = yield q(
        "DELETE FROM mail WHERE mailbox_id = $1 AND uid @IN($2) RETURNING uid, content_sha256",
        mailbox_id, uids,
    )
    return list(rows)


def _drop_orphans(candidates: Collection[str]) -> Script[None]:
    """Delete the contents among ``candidates`` that no entry uses any more."""
    if not candidates:
        return
    rows = yield q(
        "DELETE FROM contents WHERE sha256 @IN($1)"
        " AND NOT EXISTS (SELECT 1 FROM mail WHERE mail.content_sha256 = contents.sha256)"
        " RETURNING sha256",
        sorted(set(candidates)),
    )
    if rows:
        yield DropBlobs(tuple(sorted(r[0] for r in rows)))
