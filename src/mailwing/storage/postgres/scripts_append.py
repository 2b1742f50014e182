"""PostgreSQL's one-statement APPEND: a content linked into one or more mailboxes, and an
IMAP APPEND to the selected mailbox with the catch-up that follows it.

Split from :mod:`.scripts` (the other one-statement scripts, whose reasoning about
snapshots and locks this one shares, see ``_SET_FLAGS`` there) because of its size: the
statement and its variants are most of it. Used by the group commit of deliveries
(:mod:`.batch`) and by the backend's ``append_many`` and ``append_many_with_changes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mailwing.model import ContentInfo, MailEntry
from mailwing.storage import scripts
from mailwing.storage.common import MAIL_COLUMNS, clean_flags, row_to_entry, utcnow
from mailwing.storage.errors import NotFound, OverQuota
from mailwing.storage.interface import Delivery
from mailwing.storage.notify import format_ids
from mailwing.storage.postgres.content import PUBLISH_WHOLE
from mailwing.storage.postgres.scripts import _NOTIFY, _VANISHED, Solo, _expunged
from mailwing.storage.scripts import entry_date
from mailwing.storage.steps import Changed, Script, q

__all__ = ["append", "append_caught_up"]


# One content linked into several mailboxes (an SMTP delivery, ``deliver``): the steps of
# :func:`mailwing.storage.scripts.append_many` as one statement. The mailbox rows are locked first,
# in ascending id order (``box``, rows are locked as the sorted scan returns them), then the
# content's first piece (``blob``, which reads ``box`` first: it keeps the bytes from being removed,
# as ``HasBlob``; for a content whose writer left its bytes to this statement
# (:class:`~.content.PgContentWriter`) it inserts them, ``_BLOB_INSERT``, whose row lock holds them
# the same way), then the users' rows in ascending id order (``owner``): the lock order of every
# writer here (see ``_EXPUNGE`` in :mod:`.scripts`), so no two wait on each other in a cycle. The
# UPDATEs read the newest row versions (READ COMMITTED re-reads a row updated meanwhile), so UIDs
# and counters are exact however long the statement waited for a lock. Nothing is linked unless
# every mailbox was found and, when the quota is enforced, no owner would go over it with these
# copies (``over``, read from the locked users' rows, so it is exact under concurrency) (``whole``):
# the statement is all or nothing by itself, as a :class:`Solo` must be. The mail rows' foreign key
# to ``contents`` is checked at the end of the statement, after ``linked`` inserted it.
_BLOB_SHARE = ("SELECT 1 FROM content_chunks WHERE sha256 = $1::text AND seq = 0"
               " AND (SELECT count(*) FROM box) > 0 FOR SHARE")
# as :meth:`.content.PgContentWriter._publish_whole`: under the digest's advisory lock
_BLOB_INSERT = """\
INSERT INTO content_chunks (sha256, seq, data)
  SELECT $1::text, 0, $16::bytea FROM (SELECT pg_advisory_xact_lock(hashtext($1::text))) AS held
  WHERE (SELECT count(*) FROM box) > 0
  ON CONFLICT (sha256, seq) DO UPDATE SET created_at = extract(epoch FROM now())
  RETURNING 1"""
_APPEND = """\
WITH box AS (
  SELECT id, user_id, highestmodseq AS h, recent_floor AS r FROM mailboxes
  WHERE id = ANY($12::bigint[]) ORDER BY id
  FOR NO KEY UPDATE
),{snap}
blob AS ({blob}),
owner AS (
  SELECT id, used_bytes, quota_bytes, address FROM users
  WHERE id IN (SELECT user_id FROM box) AND (SELECT count(*) FROM blob) >= 0
  ORDER BY id FOR NO KEY UPDATE
),
over AS (
  SELECT o.address, o.used_bytes + x.n * $2::bigint AS used, o.quota_bytes FROM owner o
  JOIN (SELECT user_id, count(*) AS n FROM box GROUP BY user_id) x ON x.user_id = o.id
  WHERE {enforce} AND $2::bigint > 0 AND o.quota_bytes > 0
    AND o.used_bytes + x.n * $2::bigint > o.quota_bytes
),
whole AS (SELECT 1 WHERE (SELECT count(*) FROM box) = cardinality($12::bigint[])
  AND EXISTS (SELECT 1 FROM blob) AND NOT EXISTS (SELECT 1 FROM over)),
linked AS (
  INSERT INTO contents (sha256, size, crlf_size, crlf_clean, message_id, subject, from_addr,
    to_addr, cc_addr, date, created_at)
  SELECT $1::text, $2::bigint, $3::bigint, $4::boolean, $5::text, $6::text, $7::text,
    $8::text, $9::text, $10::timestamptz, $11::timestamptz FROM whole
  ON CONFLICT (sha256) DO NOTHING
),
alloc AS (
  UPDATE mailboxes b SET uidnext = b.uidnext + 1, highestmodseq = b.highestmodseq + 1{claim}
  FROM box, whole WHERE b.id = box.id
  RETURNING b.id, b.uidnext - 1 AS uid, b.highestmodseq AS modseq, b.user_id
),
added AS (
  INSERT INTO mail (mailbox_id, uid, modseq, internal_date, flags, content_sha256)
  SELECT a.id, a.uid, a.modseq, d.internal_date, $14::text[], $1
  FROM alloc a JOIN unnest($12::bigint[], $13::timestamptz[]) AS d(mailbox_id, internal_date)
    ON d.mailbox_id = a.id
  RETURNING id, mailbox_id, uid, modseq
),
counted AS (
  UPDATE users u SET used_messages = u.used_messages + x.n,
    used_bytes = u.used_bytes + x.n * $2::bigint
  FROM (SELECT user_id, count(*) AS n FROM alloc GROUP BY user_id) x, owner
  WHERE u.id = x.user_id AND owner.id = x.user_id
),
{note}
SELECT EXISTS (SELECT 1 FROM blob),
  ARRAY(SELECT ARRAY[mailbox_id, id, uid, modseq] FROM added),
  ARRAY(SELECT ARRAY[address, used::text, quota_bytes::text] FROM over ORDER BY address),
  ARRAY(SELECT id FROM box), (SELECT count(*) FROM note){caught_up}
"""
_APPEND_NOTE = _NOTIFY.format(n=15, source="(SELECT 1 FROM alloc LIMIT 1) AS a")
#: (its bytes given, the quota enforced) -> the statement
_APPEND_SQL = {
    (data, enforce): _APPEND.format(blob=_BLOB_INSERT if data else _BLOB_SHARE,
                                    note=_APPEND_NOTE, enforce="true" if enforce else "false",
                                    snap="", claim="", caught_up="")
    for data in (False, True) for enforce in (False, True)
}
# An IMAP APPEND to the session's selected mailbox with the catch-up since ``$S`` after it and, when
# ``$C``, the \\Recent claim (:meth:`.backend.PostgresStorage.append_many_with_changes`): the
# mailbox row as of the statement's snapshot (``snap``: as ``_SET_FLAGS_CAUGHT_UP``'s ``b``) and the
# entries others changed since ``$S`` in it (``others``), read only when the snapshot is current
# (its HIGHESTMODSEQ is the one ``box`` read under the lock: see ``_SET_FLAGS`` in :mod:`.scripts`);
# the new entry is the statement's own. The claim raises the floor past the new UID in ``alloc``, as
# ``_CLAIM_RECENT`` (:mod:`.scripts`) would, the old floor being ``box``'s (read under the lock);
# only with a current snapshot, since the caller catches up and claims on its own otherwise.
_APPEND_SNAP = """
snap AS MATERIALIZED (
  SELECT x.highestmodseq AS h, x.vanished_floor AS f,
{vanished}
  FROM mailboxes x WHERE x.id = ($12::bigint[])[1]
),
others AS (
  SELECT {columns} FROM mail m JOIN contents c ON c.sha256 = m.content_sha256
  WHERE m.mailbox_id = ($12::bigint[])[1] AND m.modseq > ${s}::bigint
    AND m.modseq <= (SELECT h FROM snap)
    AND EXISTS (SELECT 1 FROM box, snap WHERE box.h = snap.h)
),"""
_APPEND_CLAIM = """,
    recent_floor = CASE WHEN ${c}::boolean AND box.h = (SELECT h FROM snap)
      THEN greatest(b.recent_floor, b.uidnext + 1) ELSE b.recent_floor END"""
_APPEND_CAUGHT_UP = """,
  s.h, s.f, s.live, s.gone, (SELECT r FROM box), (SELECT h FROM box), e.*
FROM (SELECT 1) AS one LEFT JOIN snap s ON true LEFT JOIN others e ON true
ORDER BY e.uid"""
_APPEND_WIDTH = 11  # the columns before an entry's in _APPEND_CAUGHT_UP's rows


def _append_caught_up_sql(data: bool, enforce: bool) -> str:
    since, claim = (17, 18) if data else (16, 17)
    return _APPEND.format(
        blob=_BLOB_INSERT if data else _BLOB_SHARE, note=_APPEND_NOTE,
        enforce="true" if enforce else "false",
        snap=_APPEND_SNAP.format(s=since, columns=MAIL_COLUMNS,
                                 vanished=_VANISHED.format(since=f"${since}", box="x.id")),
        claim=_APPEND_CLAIM.format(c=claim), caught_up=_APPEND_CAUGHT_UP)


_APPEND_CAUGHT_UP_SQL = {(data, enforce): _append_caught_up_sql(data, enforce)
                         for data in (False, True) for enforce in (False, True)}


def append(content: ContentInfo, deliveries: Sequence[Delivery],
           enforce_quota: bool = False, data: bytes | None = None) -> Script[list[MailEntry]]:
    """:func:`mailwing.storage.scripts.append` in one statement when every delivery goes to
    another mailbox with the same flags (SMTP, ``deliver``); the shared script otherwise.
    ``data``: the content's bytes, not stored yet (its writer left them to this transaction).
    The statement is a :class:`Solo` transaction, ``enforce_quota`` (an IMAP APPEND,
    ``deliver``) included: the statement reads the owners' usage under their row locks and
    links nothing when a copy would take one over quota (``over``), so there is nothing to
    roll back. (The bytes it was given stay stored, unlinked, as when a mailbox is missing:
    :mod:`.gc` removes them.) Before, an enforced one was ``BEGIN``, the statement and
    ``COMMIT``: three round trips with the mailbox's row lock held across them."""
    flag_sets = {clean_flags(d.flags) for d in deliveries}
    mailbox_ids = [d.mailbox_id for d in deliveries]
    if len(flag_sets) != 1 or len(set(mailbox_ids)) != len(mailbox_ids):
        if data is not None:
            yield q(PUBLISH_WHOLE, content.sha256, data)
        return (yield from scripts.append(content, deliveries, enforce_quota))
    [flags] = flag_sets
    now = utcnow()
    dates = [entry_date(d.internal_date, now) for d in deliveries]
    f = content.fields
    args: tuple[Any, ...] = (
        content.sha256, content.size, content.crlf_size, content.crlf_clean,
        f.message_id, f.subject, f.from_, f.to, f.cc, f.date, now, mailbox_ids, dates, flags,
        format_ids(mailbox_ids).decode("ascii"),
    )
    sql = _APPEND_SQL[data is not None, enforce_quota]
    if data is not None:
        args += (data,)
    rows = yield Solo(sql, args)
    return (yield from _appended(rows, content, deliveries, flags, dates))


def _appended(rows: Sequence[Any], content: ContentInfo, deliveries: Sequence[Delivery],
              flags: frozenset[str], dates: Sequence[Any]) -> Script[list[MailEntry]]:
    """The entries an ``_APPEND`` statement made, from its first row; NotFound or
    OverQuota when it linked nothing."""
    mailbox_ids = [d.mailbox_id for d in deliveries]
    stored, added, over, found, _notified = rows[0][:5]
    if len(found) != len(mailbox_ids):
        missing = sorted(set(mailbox_ids) - {int(i) for i in found})
        raise NotFound(f"no mailbox with id {missing[0]}")
    if not stored:
        raise NotFound(f"content {content.sha256} is not stored (removed meanwhile?)")
    if over:  # only when enforced; then the statement linked nothing
        address, used, limit = over[0]
        raise OverQuota(f"{address} would be over quota ({used} > {limit} bytes)", address)
    yield Changed(tuple(sorted(mailbox_ids)))
    by_box = {int(a[0]): a for a in added}
    return [
        MailEntry(id=int(by_box[d.mailbox_id][1]), mailbox_id=d.mailbox_id,
                  uid=int(by_box[d.mailbox_id][2]), modseq=int(by_box[d.mailbox_id][3]),
                  internal_date=date, flags=flags, content=content)
        for d, date in zip(deliveries, dates, strict=True)
    ]


def append_caught_up(
    content: ContentInfo, delivery: Delivery, enforce_quota: bool, data: bytes | None,
    since_modseq: int, claim_from: int | None,
) -> Script[tuple[list[MailEntry],
                  tuple[tuple[int, list[MailEntry], list[int]], int | None] | None]]:
    """:func:`append` of one message and the catch-up of its mailbox since
    ``since_modseq`` after it, with the \\Recent claim of the new mail when ``claim_from``
    is not None (the session claims, as its catch-up would), in one statement (see
    ``_APPEND_SNAP``): (the entry, (the changes, the floor)), the second None when another
    writer committed while the statement waited for the mailbox's lock (nothing claimed:
    the caller catches up, and claims, on its own). One round trip where there were two or
    three."""
    flags = clean_flags(delivery.flags)
    now = utcnow()
    date = entry_date(delivery.internal_date, now)
    f = content.fields
    mailbox_id = delivery.mailbox_id
    args: tuple[Any, ...] = (
        content.sha256, content.size, content.crlf_size, content.crlf_clean,
        f.message_id, f.subject, f.from_, f.to, f.cc, f.date, now, [mailbox_id], [date],
        flags, str(mailbox_id),
    )
    if data is not None:
        args += (data,)
    args += (since_modseq, claim_from is not None)
    rows = yield Solo(_APPEND_CAUGHT_UP_SQL[data is not None, enforce_quota], args)
    [entry] = yield from _appended(rows, content, [delivery], flags, [date])
    first = rows[0]
    snap_h, _floor, live, gone, old_floor, lock_h = first[5:_APPEND_WIDTH]
    if snap_h != lock_h:
        return [entry], None
    others = [row_to_entry(r[_APPEND_WIDTH:]) for r in rows if r[_APPEND_WIDTH] is not None]
    expunged = _expunged(None if live is None else [*live, entry.uid], gone, entry.uid)
    changes = (entry.modseq, [*others, _as_read(entry)], expunged)
    return [entry], (changes, None if claim_from is None else int(old_floor))


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _as_read(entry: MailEntry) -> MailEntry:
    """``entry`` as a read of its row gives it (a catch-up's entries come from rows):
    timestamps in UTC, as PostgreSQL returns a ``timestamptz``, whatever zone the APPEND
    gave its date in (an IMAP session's view keeps the entries of its catch-ups)."""
    c, f = entry.content, entry.content.fields
    return row_to_entry((
        entry.id, entry.mailbox_id, entry.uid, entry.modseq, _utc(entry.internal_date),
        sorted(entry.flags), c.sha256, c.size, c.crlf_size, c.crlf_clean, f.message_id,
        f.subject, f.from_, f.to, f.cc, _utc(f.date)))
