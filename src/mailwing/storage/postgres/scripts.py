"""PostgreSQL's own versions of the hottest IMAP scripts: each is one statement.

Why: on PostgreSQL every statement of a script is a round trip to the server (which shares the
machine's cores with mailwing), and the shared scripts of :mod:`mailwing.storage.scripts_mail`
take several. A STORE took seven (BEGIN, lock the mailbox, read the entries, raise
HIGHESTMODSEQ, one UPDATE per resulting flag set, COMMIT), holding the mailbox row's lock, which
every other writer of that mailbox waits for, across five of them; a catch-up
(``mail_changes``) took five (a REPEATABLE READ transaction around three reads). Here each is a
single statement with data-modifying CTEs, so a STORE is BEGIN, the statement, COMMIT (the lock
is taken by the statement and released by the COMMIT right after), and a catch-up is one
statement outside any transaction: one statement sees one snapshot, which is all REPEATABLE
READ gave it. The results and the rules (RFC 7162 UNCHANGEDSINCE, one new MODSEQ per STORE,
entries bounded by the HIGHESTMODSEQ read) are those of the shared scripts, which the contract
suite (tests/storage) checks on both backends. SQLite keeps the shared scripts: its statements
are in-process calls, not round trips.

They are still scripts (generators of :mod:`mailwing.storage.steps`), run by the backend's
ordinary transaction, so a step such as ``Volatile`` or ``Changed`` may precede or follow
the statement.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from mailwing.model import ContentInfo, Mailbox, MailEntry
from mailwing.storage import scripts
from mailwing.storage.common import (
    MAIL_COLUMNS,
    clean_flags,
    row_to_entry,
    row_to_mailbox,
    utcnow,
)
from mailwing.storage.errors import NotFound, OverQuota
from mailwing.storage.interface import Delivery, FlagMode
from mailwing.storage.notify import format_ids
from mailwing.storage.postgres.content import PUBLISH_WHOLE
from mailwing.storage.postgres.listen import CHANNEL
from mailwing.storage.scripts import entry_date
from mailwing.storage.scripts_catchup import brings_new
from mailwing.storage.scripts_mail import _new_flags, _uid_list
from mailwing.storage.scripts_vanished import absent_uids
from mailwing.storage.steps import Batch, Changed, Query, Script, Volatile, q

__all__ = ["AtCommit", "Solo", "append", "append_caught_up", "catch_up", "claim_recent",
           "expunge", "mail_changes", "open_mailbox", "set_flags", "set_flags_caught_up"]


class Solo(Query):
    """A statement that is a whole transaction when a script yields it first: the backend
    runs it without ``BEGIN`` and ``COMMIT`` (PostgreSQL commits a statement sent outside a
    transaction block by itself), one round trip instead of three. So the statement must be
    all or nothing on its own (it changes nothing when the script would raise), send its own
    ``pg_notify`` (see ``_NOTIFY``), and relax its own commit when volatile (see ``_RELAX``).
    A step after it runs in a transaction that the backend opens then, which lets a script
    start over the ordinary way when the statement found it could not finish alone. Not the
    first statement of a script: an ordinary one, in that script's transaction. A
    :class:`~mailwing.storage.steps.Query` to everything else."""

    __slots__ = ()


class AtCommit(Batch):
    """A :class:`~mailwing.storage.steps.Batch` (SQL text without parameters) that the
    backend sends in front of the ``COMMIT`` of the script's transaction, in the same
    simple-protocol query (one round trip for both); it runs inside the transaction, and an
    error in it rolls the transaction back, as a statement of its own would. The script
    receives None. Outside a transaction, an ordinary ``Batch``."""

    __slots__ = ()


#: CTEs for a :class:`Solo` statement: ``note`` notifies ``$n`` (the ``format_ids`` payload)
#: for each row of ``{source}`` (PostgreSQL sends one notification per distinct payload, at
#: commit); ``relax`` is ``SET LOCAL synchronous_commit TO off`` when ``$m`` is true (a
#: setting local to the statement's own transaction, read by its commit). A CTE that reads
#: nothing is not run: the final SELECT names both.
_NOTIFY = f"note AS (SELECT pg_notify('{CHANNEL}', ${{n}}::text) FROM {{source}})"
_RELAX = "relax AS (SELECT set_config('synchronous_commit', 'off', true) WHERE ${m}::boolean)"

#: the new flag set of an entry, from its stored one (``m.flags``) and the STORE's ($3);
#: sorted by code point (``COLLATE "C"``), as the backend sorts the sets it writes
_NEW_FLAGS: dict[str, str] = {
    "add": 'ARRAY(SELECT f FROM unnest(m.flags || $3::text[]) f GROUP BY f ORDER BY f COLLATE "C")',
    "remove": 'ARRAY(SELECT f FROM unnest(m.flags) f WHERE f <> ALL($3::text[])'
              ' ORDER BY f COLLATE "C")',
    "replace": "$3::text[]",
}

# How the one statement stays correct under concurrency. Its snapshot is taken when it
# starts, possibly before it gets the mailbox row's lock (``lk``, which reads the newest
# version of the row); every writer of a mailbox's entries holds that lock and raises
# HIGHESTMODSEQ, so when the newest HIGHESTMODSEQ equals the snapshot's (``snap``) nothing
# was committed in between and the snapshot's entries are the current ones (``seen``).
# Otherwise (the statement waited for the lock while another writer committed) the entries
# are read with row locks (``newest``): in READ COMMITTED a locking read returns the newest
# committed version of each row of the snapshot (an entry expunged meanwhile is not
# returned), and with the mailbox's lock held no writer changes them before the commit.
# Each CTE runs only when its test is true (a filter without columns is checked before the
# scan): an uncontended STORE locks no entry beyond the ones it updates. The UIDs asked
# for were all committed before the statement began (the session learnt them earlier), so
# the snapshot holds every one of them that exists. The UPDATEs, too, act on the newest
# row versions (READ COMMITTED re-reads a row updated after the snapshot). Lock order: the
# mailbox row, then its entries (``newest`` and ``upd`` both read ``lk`` first), as every
# writer. Before, a stale statement changed nothing and the script ran it again in a
# transaction: BEGIN, the statement (twice when stale again), COMMIT.
_SET_FLAGS = """\
WITH lk AS (SELECT highestmodseq AS h FROM mailboxes WHERE id = $1 FOR NO KEY UPDATE),
snap AS (SELECT highestmodseq AS h FROM mailboxes WHERE id = $1),
seen AS (
  SELECT m.uid, m.modseq, m.flags FROM mail m
  WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[])
    AND EXISTS (SELECT 1 FROM lk, snap WHERE lk.h = snap.h)
),
newest AS (
  SELECT m.uid, m.modseq, m.flags FROM mail m
  WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[])
    AND EXISTS (SELECT 1 FROM lk, snap WHERE lk.h <> snap.h)
  FOR NO KEY UPDATE
),
cand AS (
  SELECT m.uid, m.modseq, m.flags AS old, {new} AS new
  FROM (SELECT * FROM seen UNION ALL SELECT * FROM newest) m
),
todo AS (
  SELECT uid, new FROM cand
  WHERE ($4::bigint IS NULL OR modseq <= $4::bigint)
    AND NOT (new @> old AND new <@ old)
),
box AS (
  UPDATE mailboxes SET highestmodseq = highestmodseq + 1
  WHERE id = $1 AND EXISTS (SELECT 1 FROM todo) RETURNING highestmodseq
),
upd AS (
  UPDATE mail u SET flags = t.new, modseq = box.highestmodseq FROM todo t, box
  WHERE u.mailbox_id = $1 AND u.uid = t.uid
  RETURNING u.id, u.mailbox_id, u.uid, u.modseq, u.internal_date, u.flags, u.content_sha256
),
{note},
{relax}{catch_up}
"""
_SET_FLAGS_ALONE = """
SELECT lk.h <> snap.h, (SELECT highestmodseq FROM box),
  ARRAY(SELECT uid FROM cand WHERE modseq > $4::bigint ORDER BY uid),
  (SELECT count(*) FROM note), (SELECT count(*) FROM relax), e.*
FROM lk CROSS JOIN snap LEFT JOIN (
  SELECT {columns} FROM upd m JOIN contents c ON c.sha256 = m.content_sha256
) e ON true
ORDER BY e.uid"""
# The same STORE with the catch-up since $7 that follows it (``catch_up``'s results), when
# the statement's snapshot is current (nothing committed between it and the lock: see
# above): the mailbox row and the expunged UIDs as of the snapshot (``b``, a STORE expunges
# nothing), the entries changed since $7 by others (``others``, the snapshot's; the ones this
# STORE changes come from ``upd``), one per row with ``own`` telling which. With a stale
# snapshot, ``others`` is not read: the caller catches up with a statement of its own.
_SET_FLAGS_CAUGHT_UP = """,
b AS MATERIALIZED (
  SELECT x.vanished_floor AS f, x.uidnext AS n, x.recent_floor AS r,
    CASE WHEN x.highestmodseq > $7::bigint AND $7::bigint < x.vanished_floor
      THEN ARRAY(SELECT uid FROM mail WHERE mailbox_id = $1 ORDER BY uid) END AS live,
    CASE WHEN x.highestmodseq > $7::bigint AND $7::bigint >= x.vanished_floor
      THEN ARRAY(SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $7::bigint
                 AND modseq <= x.highestmodseq ORDER BY uid) END AS gone
  FROM mailboxes x WHERE x.id = $1
),
others AS (
  SELECT {columns} FROM mail m JOIN contents c ON c.sha256 = m.content_sha256
  WHERE m.mailbox_id = $1 AND m.modseq > $7::bigint AND m.modseq <= (SELECT h FROM snap)
    AND EXISTS (SELECT 1 FROM lk, snap WHERE lk.h = snap.h)
    AND m.uid NOT IN (SELECT uid FROM todo)
)
SELECT lk.h <> snap.h, (SELECT highestmodseq FROM box),
  ARRAY(SELECT uid FROM cand WHERE modseq > $4::bigint ORDER BY uid),
  (SELECT count(*) FROM note), (SELECT count(*) FROM relax),
  b.f, b.n, b.r, b.live, b.gone, snap.h, e.*
FROM lk CROSS JOIN snap CROSS JOIN b LEFT JOIN (
  SELECT true AS own, {columns} FROM upd m JOIN contents c ON c.sha256 = m.content_sha256
  UNION ALL
  SELECT false, * FROM others
) e ON true
ORDER BY e.uid"""

_SET_FLAGS_BY_MODE = {
    mode: _SET_FLAGS.format(new=new, note=_NOTIFY.format(n=5, source="box"),
                            relax=_RELAX.format(m=6),
                            catch_up=_SET_FLAGS_ALONE.format(columns=MAIL_COLUMNS))
    for mode, new in _NEW_FLAGS.items()
}
_SET_FLAGS_CAUGHT_UP_BY_MODE = {
    mode: _SET_FLAGS.format(new=new, note=_NOTIFY.format(n=5, source="box"),
                            relax=_RELAX.format(m=6),
                            catch_up=_SET_FLAGS_CAUGHT_UP.format(columns=MAIL_COLUMNS))
    for mode, new in _NEW_FLAGS.items()
}
_CAUGHT_UP_WIDTH = 11  # the columns before an entry's own flag in _SET_FLAGS_CAUGHT_UP


def set_flags(
    mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
    unchanged_since: int | None, volatile: bool = False,
) -> Script[tuple[list[MailEntry], list[int]]]:
    """:func:`mailwing.storage.scripts_mail.set_flags` in one statement, a :class:`Solo`
    transaction of its own, current whether or not another writer of the mailbox
    committed while it waited for the lock (see ``_SET_FLAGS``). ``volatile``: the commit
    need not wait for the disk (:class:`~mailwing.storage.steps.Volatile`)."""
    wanted, wanted_flags = _uid_list(uids), clean_flags(flags)
    _new_flags(frozenset(), wanted_flags, mode)  # an unknown mode fails before any work
    if not wanted:
        return [], []
    if volatile:
        yield Volatile()
    sql = _SET_FLAGS_BY_MODE[mode]
    args = (mailbox_id, wanted, wanted_flags, unchanged_since, str(mailbox_id), volatile)
    rows = yield Solo(sql, args)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    modified = [int(u) for u in rows[0][2]]
    if rows[0][1] is None:
        return [], modified
    yield Changed((mailbox_id,))
    changed = [row_to_entry(r[5:]) for r in rows if r[5] is not None]
    return changed, modified


def set_flags_caught_up(
    mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
    unchanged_since: int | None, since_modseq: int, claim_from: int | None,
    volatile: bool = False,
) -> Script[tuple[tuple[list[MailEntry], list[int]],
                  tuple[tuple[int, list[MailEntry], list[int]], bool, int | None] | None]]:
    """:func:`set_flags` and :func:`catch_up` since ``since_modseq`` after it, in the one
    statement of the STORE: (the STORE's result, what ``catch_up`` returns), the second
    None when another writer committed while the statement waited for the mailbox's lock
    (its snapshot then misses that writer's changes: the caller catches up on its own).
    One round trip where there were two."""
    wanted, wanted_flags = _uid_list(uids), clean_flags(flags)
    _new_flags(frozenset(), wanted_flags, mode)  # an unknown mode fails before any work
    if not wanted:
        return ([], []), None
    if volatile:
        yield Volatile()
    rows = yield Solo(_SET_FLAGS_CAUGHT_UP_BY_MODE[mode], (
        mailbox_id, wanted, wanted_flags, unchanged_since, str(mailbox_id), volatile,
        since_modseq))
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    first = rows[0]
    stale, raised, modified = first[0], first[1], [int(u) for u in first[2]]
    start = _CAUGHT_UP_WIDTH + 1
    own = [row_to_entry(r[start:]) for r in rows if r[_CAUGHT_UP_WIDTH] is True]
    if raised is not None:
        yield Changed((mailbox_id,))
    if stale:
        return (own, modified), None
    highest = int(raised) if raised is not None else int(first[10])
    if highest <= since_modseq:
        changes: tuple[int, list[MailEntry], list[int]] = (highest, [], [])
    else:
        entries = [row_to_entry(r[start:]) for r in rows if r[_CAUGHT_UP_WIDTH] is not None]
        _floor, uidnext, _recent, live, gone = first[5:10]
        if live is not None:  # expunged rows pruned: every UID given out and not here now
            expunged = absent_uids([int(u) for u in live], int(uidnext) - 1)
        else:
            expunged = [int(u) for u in gone or ()]
        changes = (highest, entries, expunged)
    if not brings_new(changes, claim_from):
        return (own, modified), (changes, False, None)
    floor, uidnext = int(first[7]), int(first[6])
    return (own, modified), (changes, True, floor if uidnext <= floor else None)


# ``b`` is the mailbox row with, when something changed after ``$2``, the expunged UIDs (or,
# when those rows were pruned below ``$2``, every UID still present); they come with the
# first row only, the entries changed (if any) one per row. One statement: one snapshot.
# ``{box}``: more columns of the mailbox row (``open_mailbox``), after the first five.
_CHANGES_TEMPLATE = """\
WITH b AS MATERIALIZED (
  SELECT x.highestmodseq AS h, x.vanished_floor AS f, x.uidnext AS n,
    CASE WHEN x.highestmodseq > $2::bigint AND $2::bigint < x.vanished_floor
      THEN ARRAY(SELECT uid FROM mail WHERE mailbox_id = $1 ORDER BY uid) END AS live,
    CASE WHEN x.highestmodseq > $2::bigint AND $2::bigint >= x.vanished_floor
      THEN ARRAY(SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2::bigint
                 AND modseq <= x.highestmodseq ORDER BY uid) END AS gone{box_cte}
  FROM mailboxes x WHERE x.id = $1{named}
)
SELECT b.h, b.f, b.n,
  CASE WHEN e.rn IS NULL OR e.rn = 1 THEN b.live END,
  CASE WHEN e.rn IS NULL OR e.rn = 1 THEN b.gone END,{box}
  e.*
FROM b LEFT JOIN LATERAL (
  SELECT {mail}, row_number() OVER (ORDER BY m.uid) AS rn
  FROM mail m JOIN contents c ON c.sha256 = m.content_sha256
  WHERE b.h > $2::bigint AND m.mailbox_id = $1 AND m.modseq > $2::bigint AND m.modseq <= b.h
) e ON true
ORDER BY e.uid
"""
_MAIL_CHANGES = _CHANGES_TEMPLATE.format(box_cte="", box="", named="", mail=MAIL_COLUMNS)
#: the mailbox row as ``MAILBOX_COLUMNS`` gives it, then its \\Recent floor
_BOX_CTE = (",\n    x.id AS i, x.user_id AS u, x.name AS nm, x.uidvalidity AS v,"
            " x.special_use AS su, EXISTS (SELECT 1 FROM subscriptions s"
            " WHERE s.user_id = x.user_id AND s.name = x.name) AS sub, x.recent_floor AS r")
_BOX = "\n  b.i, b.u, b.nm, b.v, b.n, b.h, b.su, b.sub, b.r,"
_OPEN_MAILBOX = _CHANGES_TEMPLATE.format(box_cte=_BOX_CTE, box=_BOX, named="", mail=MAIL_COLUMNS)
#: the same, only while the mailbox is still that user's ($3) of that name ($4) and
#: UIDVALIDITY ($5): the lookup by name the caller skipped
_OPEN_NAMED = _CHANGES_TEMPLATE.format(
    box_cte=_BOX_CTE, box=_BOX, mail=MAIL_COLUMNS,
    named=" AND x.user_id = $3 AND x.name = $4 AND x.uidvalidity = $5")
_BOX_WIDTH = 9  # the columns ``box`` adds to _OPEN_MAILBOX's rows
#: the catch-up with the mailbox's \\Recent floor, from the same snapshot
_CATCH_UP = _CHANGES_TEMPLATE.format(box_cte=", x.recent_floor AS r", box="\n  b.r,",
                                     named="", mail=MAIL_COLUMNS)


def _changes(rows: Sequence[Any], since_modseq: int, skip: int
             ) -> tuple[int, list[MailEntry], list[int]]:
    """A catch-up from the rows of :data:`_CHANGES_TEMPLATE` (``skip``: the mailbox columns
    after the first five)."""
    highest, _floor, uidnext, live, gone = rows[0][:5]
    highest = int(highest)
    if highest <= since_modseq:
        return highest, [], []
    start = 5 + skip
    entries = [row_to_entry(r[start:-1]) for r in rows if r[start] is not None]
    if live is not None:  # expunged rows pruned: every UID given out and not here now
        return highest, entries, absent_uids([int(u) for u in live], int(uidnext) - 1)
    return highest, entries, [int(u) for u in gone or ()]


def mail_changes(
    mailbox_id: int, since_modseq: int
) -> Script[tuple[int, list[MailEntry], list[int]]]:
    """:func:`mailwing.storage.scripts_mail.mail_changes` in one statement."""
    rows = yield q(_MAIL_CHANGES, mailbox_id, since_modseq)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    return _changes(rows, since_modseq, 0)


def catch_up(
    mailbox_id: int, since_modseq: int, claim_from: int | None
) -> Script[tuple[tuple[int, list[MailEntry], list[int]], bool, int | None]]:
    """:func:`mailwing.storage.scripts_catchup.changes_and_claimed` in one statement: the
    changes, whether they bring new mail (an entry at or above ``claim_from``), and the
    \\Recent floor when that new mail is claimed already (None: the claim must be
    written). The floor and UIDNEXT come from the catch-up's own snapshot: when every UID
    given out by then is below the floor, so is every new entry of the catch-up, which
    another session claimed, as the read of ``recent_claimed`` after it would have found
    (later mail is the next catch-up's); otherwise the claim follows, which reads the
    newest floor under the row's lock. One statement instead of two."""
    rows = yield q(_CATCH_UP, mailbox_id, since_modseq)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    changes = _changes(rows, since_modseq, 1)
    if not brings_new(changes, claim_from):
        return changes, False, None
    floor, uidnext = int(rows[0][5]), int(rows[0][2])
    return changes, True, (floor if uidnext <= floor else None)


def open_mailbox(
    mailbox_id: int, since_modseq: int, named: tuple[int, str, int] | None = None
) -> Script[tuple[Mailbox, tuple[int, list[MailEntry], list[int]], int | None]]:
    """The mailbox's row, :func:`mail_changes` and the \\Recent floor a claim would return
    when it would not raise it (``recent_claimed``; None when there is something to claim),
    in one statement: one snapshot, as a claim that finds nothing and the reads after it
    would have seen had nothing committed in between. ``named``: (user id, name,
    UIDVALIDITY) the mailbox must still have (NotFound otherwise)."""
    if named is None:
        rows = yield q(_OPEN_MAILBOX, mailbox_id, since_modseq)
    else:
        rows = yield q(_OPEN_NAMED, mailbox_id, since_modseq, *named)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    first = rows[0]
    box = row_to_mailbox(first[5:13])
    floor = int(first[13])
    return box, _changes(rows, since_modseq, _BOX_WIDTH), (
        floor if box.uidnext <= floor else None)


# One content linked into several mailboxes (an SMTP delivery, ``deliver``): the steps of
# :func:`mailwing.storage.scripts.append_many` as one statement. The mailbox rows are locked
# first, in ascending id order (``box``, rows are locked as the sorted scan returns them),
# then the content's first piece (``blob``, which reads ``box`` first: it keeps the bytes
# from being removed, as ``HasBlob``; for a content whose writer left its bytes to this
# statement (:class:`~.content.PgContentWriter`) it inserts them, ``_BLOB_INSERT``, whose
# row lock holds them the same way), then the users' rows in ascending id order
# (``owner``): the lock order of every writer here (see ``_EXPUNGE``), so no two wait on
# each other in a cycle. The UPDATEs read the newest row versions (READ COMMITTED re-reads
# a row updated meanwhile), so UIDs and counters are exact however long the statement
# waited for a lock.
# Nothing is linked unless every mailbox was found and, when the quota is enforced, no owner
# would go over it with these copies (``over``, read from the locked users' rows, so it is
# exact under concurrency) (``whole``): the statement is all or nothing by itself, as a
# :class:`Solo` must be. The mail rows' foreign key to ``contents``
# is checked at the end of the statement, after ``linked`` inserted it.
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
# An IMAP APPEND to the session's selected mailbox with the catch-up since ``$S`` after it
# and, when ``$C``, the \\Recent claim (:meth:`.backend.PostgresStorage.append_many_with_changes`):
# the mailbox row as of the statement's snapshot (``snap``: as ``_SET_FLAGS_CAUGHT_UP``'s
# ``b``) and the entries others changed since ``$S`` in it (``others``), read only when the
# snapshot is current (its HIGHESTMODSEQ is the one ``box`` read under the lock: see
# ``_SET_FLAGS``); the new entry is the statement's own. The claim raises the floor past the
# new UID in ``alloc``, as ``_CLAIM_RECENT`` would, the old floor being ``box``'s (read under
# the lock); only with a current snapshot, since the caller catches up and claims on its own
# otherwise.
_APPEND_SNAP = """
snap AS MATERIALIZED (
  SELECT x.highestmodseq AS h, x.vanished_floor AS f,
    CASE WHEN x.highestmodseq > ${s}::bigint AND ${s}::bigint < x.vanished_floor
      THEN ARRAY(SELECT uid FROM mail WHERE mailbox_id = x.id ORDER BY uid) END AS live,
    CASE WHEN x.highestmodseq > ${s}::bigint AND ${s}::bigint >= x.vanished_floor
      THEN ARRAY(SELECT uid FROM expunged WHERE mailbox_id = x.id AND modseq > ${s}::bigint
                 AND modseq <= x.highestmodseq ORDER BY uid) END AS gone
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
        snap=_APPEND_SNAP.format(s=since, columns=MAIL_COLUMNS),
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
    if live is not None:  # expunged rows pruned: every UID given out and not here now
        expunged = absent_uids([*(int(u) for u in live), entry.uid], entry.uid)
    else:
        expunged = [int(u) for u in gone or ()]
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




# ``old`` locks the mailbox row and reads its newest version (a concurrent claim waits, then
# sees the floor that one raised); the UPDATE re-reads that version too. A :class:`Solo`
# statement: the lock is released by the statement's own commit.
_CLAIM_RECENT = f"""\
WITH {_RELAX.format(m=2)}
UPDATE mailboxes b SET recent_floor = greatest(b.recent_floor, b.uidnext)
FROM (SELECT recent_floor FROM mailboxes WHERE id = $1 FOR NO KEY UPDATE) AS old
WHERE b.id = $1 RETURNING old.recent_floor, (SELECT count(*) FROM relax)
"""


def claim_recent(mailbox_id: int, volatile: bool = False) -> Script[int]:
    """:func:`mailwing.storage.scripts_mailboxes.claim_recent` as one :class:`Solo`
    statement. (Run after the read of ``recent_claimed`` found UIDs to claim: that plain
    read costs PostgreSQL less than this statement does when there is nothing to claim,
    which is every SELECT of a mailbox without new mail.)"""
    if volatile:
        yield Volatile()  # a claim lost in a crash only makes the messages \\Recent again
    rows = yield Solo(_CLAIM_RECENT, (mailbox_id, volatile))
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    return int(rows[0][0])


# EXPUNGE's first statement: the mailbox part of :func:`mailwing.storage.scripts.expunge`.
# Locks in the order of every writer (see ``_APPEND``): the mailbox row (``lk``), then the
# first piece of each content the doomed entries use (``held``, ascending digests; an append
# of one of them holds it shared until it commits, and one that starts now waits for this
# transaction), then the owner's row (``counted``, whose filter reads ``held`` first). The
# entries come from the snapshot or, when another writer of the mailbox committed after the
# statement's snapshot was taken, from a locking read of their newest versions, as in
# ``_SET_FLAGS`` (before, the statement changed nothing then and ran again).
_EXPUNGE = f"""\
WITH lk AS (SELECT highestmodseq AS h, user_id FROM mailboxes WHERE id = $1 FOR NO KEY UPDATE),
snap AS (SELECT highestmodseq AS h FROM mailboxes WHERE id = $1),
seen AS (
  SELECT m.uid, m.content_sha256 AS sha256, c.size
  FROM mail m JOIN contents c ON c.sha256 = m.content_sha256
  WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[])
    AND EXISTS (SELECT 1 FROM lk, snap WHERE lk.h = snap.h)
),
newest AS (
  SELECT m.uid, m.content_sha256 AS sha256, c.size
  FROM mail m JOIN contents c ON c.sha256 = m.content_sha256
  WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[])
    AND EXISTS (SELECT 1 FROM lk, snap WHERE lk.h <> snap.h)
  FOR UPDATE OF m
),
doomed AS (SELECT * FROM seen UNION ALL SELECT * FROM newest),
held AS (
  SELECT sha256 FROM content_chunks WHERE sha256 IN (SELECT sha256 FROM doomed) AND seq = 0
  ORDER BY sha256 FOR UPDATE
),
box AS (
  UPDATE mailboxes SET highestmodseq = highestmodseq + 1
  WHERE id = $1 AND EXISTS (SELECT 1 FROM doomed) AND (SELECT count(*) FROM held) >= 0
  RETURNING highestmodseq
),
kept AS (
  INSERT INTO expunged (mailbox_id, uid, modseq)
  SELECT $1, d.uid, box.highestmodseq FROM doomed d, box
),
gone AS (
  DELETE FROM mail m USING box
  WHERE m.mailbox_id = $1 AND m.uid IN (SELECT uid FROM doomed)
  RETURNING m.uid, m.content_sha256
),
counted AS (
  UPDATE users u SET used_messages = u.used_messages - x.n, used_bytes = u.used_bytes - x.b
  FROM (SELECT count(*) AS n, coalesce(sum(size), 0)::bigint AS b FROM doomed) x, lk, box
  WHERE u.id = lk.user_id AND x.n > 0 AND (SELECT count(*) FROM held) >= 0
),
{_NOTIFY.format(n=3, source="box")},
{_RELAX.format(m=4)}
SELECT lk.h <> snap.h, (SELECT highestmodseq FROM box),
  ARRAY(SELECT uid FROM gone ORDER BY uid),
  ARRAY(SELECT DISTINCT content_sha256 FROM gone ORDER BY content_sha256),
  (SELECT count(*) FROM note), (SELECT count(*) FROM relax)
FROM lk CROSS JOIN snap
"""

# EXPUNGE's second statement, with a snapshot taken after the first one's locks: the
# contents no entry uses any more, and their bytes. An append of one of them committed
# before the locks were granted is seen here; one that waits for them links the content
# again (or, its bytes gone, fails as a delivery of a removed content does).
_DROP_ORPHANS = """\
WITH gone AS (
  DELETE FROM contents c WHERE c.sha256 = ANY($1::text[])
    AND NOT EXISTS (SELECT 1 FROM mail m WHERE m.content_sha256 = c.sha256)
  RETURNING c.sha256
)
DELETE FROM content_chunks WHERE sha256 IN (SELECT sha256 FROM gone)
"""
#: a content digest as stored: safe to write into SQL text as it is
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _drop_orphans(digests: Sequence[str]) -> Query | AtCommit:
    """``_DROP_ORPHANS`` of ``digests``: sent with the COMMIT (their hex digits written into
    the text, which the simple protocol that carries the COMMIT needs) unless one of them
    is not a plain digest."""
    if all(_DIGEST.fullmatch(d) for d in digests):
        listed = ",".join(digests)
        return AtCommit(_DROP_ORPHANS.replace("$1::text[]", f"'{{{listed}}}'::text[]") + ";")
    return q(_DROP_ORPHANS, list(digests))


def expunge(mailbox_id: int, uids: Collection[int], volatile: bool = False
            ) -> Script[list[int]]:
    """:func:`mailwing.storage.scripts.expunge` in two statements in one transaction
    (whether or not another writer committed first): ``BEGIN``, ``_EXPUNGE``, then
    ``_DROP_ORPHANS`` sent with the ``COMMIT`` (:class:`AtCommit`): three round trips
    instead of eleven."""
    if volatile:
        yield Volatile()
    wanted = sorted({int(u) for u in uids})
    if not wanted:
        return []
    rows = yield q(_EXPUNGE, mailbox_id, wanted, str(mailbox_id), volatile)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    _stale, modseq, removed, digests = rows[0][:4]
    if modseq is None:
        return []  # nothing to do: HIGHESTMODSEQ stays
    yield Changed((mailbox_id,))
    if digests:
        yield _drop_orphans(list(digests))
    return [int(u) for u in removed]
