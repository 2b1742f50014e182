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
from typing import Any

from mailwing.model import Mailbox, MailEntry
from mailwing.storage.common import (
    MAIL_COLUMNS,
    clean_flags,
    row_to_entry,
    row_to_mailbox,
)
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import FlagMode
from mailwing.storage.postgres.listen import CHANNEL
from mailwing.storage.scripts_catchup import brings_new
from mailwing.storage.scripts_mail import _new_flags, _uid_list
from mailwing.storage.scripts_mailboxes import claimed_floor
from mailwing.storage.scripts_vanished import absent_uids
from mailwing.storage.steps import Batch, Changed, Query, Script, Volatile, q

__all__ = ["AtCommit", "Solo", "catch_up", "claim_recent", "expunge", "mail_changes",
           "open_mailbox", "set_flags", "set_flags_caught_up"]


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
#: The expunged UIDs of mailbox row ``x`` since the mod-sequence ``{since}`` (``gone``), or,
#: when those rows were pruned below it, every UID still present (``live``; the caller
#: derives the expunged ones, :func:`_expunged`); both NULL when nothing changed since.
#: ``{box}``: the mailbox id as the statement has it. Shared by every statement that
#: returns a catch-up.
_VANISHED = """\
    CASE WHEN x.highestmodseq > {since}::bigint AND {since}::bigint < x.vanished_floor
      THEN ARRAY(SELECT uid FROM mail WHERE mailbox_id = {box} ORDER BY uid) END AS live,
    CASE WHEN x.highestmodseq > {since}::bigint AND {since}::bigint >= x.vanished_floor
      THEN ARRAY(SELECT uid FROM expunged WHERE mailbox_id = {box} AND modseq > {since}::bigint
                 AND modseq <= x.highestmodseq ORDER BY uid) END AS gone"""

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
{vanished}
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
                            catch_up=_SET_FLAGS_CAUGHT_UP.format(
                                columns=MAIL_COLUMNS,
                                vanished=_VANISHED.format(since="$7", box="$1")))
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
        changes = (highest, entries, _expunged(live, gone, int(uidnext) - 1))
    if not brings_new(changes, claim_from):
        return (own, modified), (changes, False, None)
    return (own, modified), (changes, True, claimed_floor(int(first[7]), int(first[6])))


def _expunged(live: Sequence[Any] | None, gone: Sequence[Any] | None, last_uid: int
              ) -> list[int]:
    """The expunged UIDs from ``_VANISHED``'s columns; ``last_uid``: the highest UID given
    out as of the same snapshot."""
    if live is not None:  # expunged rows pruned: every UID given out and not here now
        return absent_uids([int(u) for u in live], last_uid)
    return [int(u) for u in gone or ()]


# ``b`` is the mailbox row with, when something changed after ``$2``, the expunged UIDs (or,
# when those rows were pruned below ``$2``, every UID still present); they come with the
# first row only, the entries changed (if any) one per row. One statement: one snapshot.
# ``{box}``: more columns of the mailbox row (``open_mailbox``), after the first five.
_CHANGES_TEMPLATE = """\
WITH b AS MATERIALIZED (
  SELECT x.highestmodseq AS h, x.vanished_floor AS f, x.uidnext AS n,
{vanished}{box_cte}
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
_CHANGES_TEMPLATE = _CHANGES_TEMPLATE.replace(
    "{vanished}", _VANISHED.format(since="$2", box="$1"))
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
    return highest, entries, _expunged(live, gone, int(uidnext) - 1)


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
    return changes, True, claimed_floor(int(rows[0][5]), int(rows[0][2]))


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
    claimed = claimed_floor(int(first[13]), box.uidnext)
    return box, _changes(rows, since_modseq, _BOX_WIDTH), claimed


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


# EXPUNGE's first statement: the mailbox part of :func:`mailwing.storage.scripts.expunge`. Locks in
# the order of every writer (see ``_APPEND`` in :mod:`.scripts_append`): the mailbox row (``lk``),
# then the first piece of each content the doomed entries use (``held``, ascending digests; an
# append of one of them holds it shared until it commits, and one that starts now waits for this
# transaction), then the owner's row (``counted``, whose filter reads ``held`` first). The entries
# come from the snapshot or, when another writer of the mailbox committed after the statement's
# snapshot was taken, from a locking read of their newest versions, as in ``_SET_FLAGS`` (before,
# the statement changed nothing then and ran again).
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
