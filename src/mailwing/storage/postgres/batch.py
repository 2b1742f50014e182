"""Group commit of deliveries on PostgreSQL: the deliveries a worker has in hand at once go
to the database as one statement, so one commit (one WAL flush) serves all of them.

Why: every delivery commits durably (``synchronous_commit`` on: the 250 follows the flush),
and its statement holds, until that commit is on disk, the locks that order it: the mailbox
row (UIDNEXT and HIGHESTMODSEQ, which RFC 3501 wants handed out in commit order), the
user's usage row, and PostgreSQL's own cluster-wide lock that serialises every transaction
that sends a NOTIFY from its pre-commit to the end of its commit (``PreCommit_Notify``). So
one delivery at a time commits, one flush each, whatever the number of clients: 50 SMTP
clients spent most of their time waiting for those locks (``pg_stat_activity``:
``Lock/object``, ``Lock/transactionid``), not running. One statement for N deliveries takes
each of those locks once and flushes once.

How: :meth:`DeliveryBatcher.deliver` queues a delivery; while one batch is in the database,
the deliveries that arrive wait and go together as the next one (nothing waits for company:
a lone delivery goes at once, as the one-statement script of :func:`.scripts_append.append`; the
queue is :class:`~.coalesce.Coalescer`). The statement, ``_BATCH``, is that script's
statement over arrays: mailbox rows locked first in ascending id order, then the contents'
first pieces in ascending digest order, then the users' rows in ascending id order, the lock
order of every writer (see ``.scripts``), and nothing linked unless every mailbox and every
content was found. A batch that the server
rolled back (a mailbox or a content gone, a deadlock) is retried one delivery per
statement, so that each caller gets its own answer and no delivery is refused for another
one's fault; one whose connection broke with the statement sent may have committed, so it
is not tried again (:func:`maybe_committed`): each caller gets the error. Each caller
returns after the commit of the statement that holds its delivery: durability is
unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from mailwing.model import ContentInfo, MailEntry
from mailwing.storage.common import clean_flags, utcnow
from mailwing.storage.errors import StorageError
from mailwing.storage.interface import Delivery
from mailwing.storage.notify import format_ids
from mailwing.storage.postgres.coalesce import Coalescer
from mailwing.storage.postgres.errors import BROKEN_CONNECTION
from mailwing.storage.postgres.listen import CHANNEL
from mailwing.storage.postgres.scripts import Solo
from mailwing.storage.postgres.scripts_append import append
from mailwing.storage.scripts import entry_date
from mailwing.storage.steps import Changed, Script

__all__ = ["MAX_BATCH", "DeliveryBatcher", "append_batch", "batchable", "maybe_committed"]

#: deliveries per statement at most (bounds the statement's size and its lock set)
MAX_BATCH = 64

# $1-$10, $12: one row per distinct content; $11: now; $13-$16: one row per (content,
# mailbox) copy, in the callers' order; $17: the NOTIFY payload. ``held`` takes the digest
# advisory lock of each content whose bytes come with the statement (as ``publish_whole``),
# ascending, after the mailbox rows; ``put`` inserts those bytes, ``kept`` holds the first
# piece of each content stored already (as ``HasBlob``). UIDs of one mailbox follow the
# copies' order from its UIDNEXT; the copies of one batch in one mailbox share one MODSEQ.
_BATCH = f"""\
WITH pair AS MATERIALIZED (
  SELECT * FROM unnest($13::text[], $14::bigint[], $15::timestamptz[], $16::text[])
    WITH ORDINALITY AS p(sha, mailbox_id, idate, flags, ord)
),
box AS (
  SELECT id FROM mailboxes WHERE id IN (SELECT mailbox_id FROM pair) ORDER BY id
  FOR NO KEY UPDATE
),
item AS MATERIALIZED (
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::boolean[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], $12::bytea[])
    AS c(sha, size, crlf_size, crlf_clean, message_id, subject, from_addr, to_addr, cc_addr,
         date, data)
),
held AS (
  SELECT pg_advisory_xact_lock(hashtext(s.sha)) FROM (
    SELECT sha FROM item WHERE data IS NOT NULL AND (SELECT count(*) FROM box) > 0
    ORDER BY sha) AS s
),
put AS (
  INSERT INTO content_chunks (sha256, seq, data)
  SELECT sha, 0, data FROM item WHERE data IS NOT NULL AND (SELECT count(*) FROM held) >= 0
  ORDER BY sha
  ON CONFLICT (sha256, seq) DO UPDATE SET created_at = extract(epoch FROM now())
  RETURNING 1
),
kept AS (
  SELECT 1 FROM content_chunks
  WHERE sha256 IN (SELECT sha FROM item WHERE data IS NULL) AND seq = 0
    AND (SELECT count(*) FROM put) >= 0
  ORDER BY sha256 FOR SHARE
),
whole AS (
  SELECT 1 WHERE (SELECT count(*) FROM box) = (SELECT count(DISTINCT mailbox_id) FROM pair)
    AND (SELECT count(*) FROM put) + (SELECT count(*) FROM kept) = (SELECT count(*) FROM item)
),
linked AS (
  INSERT INTO contents (sha256, size, crlf_size, crlf_clean, message_id, subject, from_addr,
    to_addr, cc_addr, date, created_at)
  SELECT sha, size, crlf_size, crlf_clean, message_id, subject, from_addr, to_addr, cc_addr,
    date, $11::timestamptz FROM item, whole
  ON CONFLICT (sha256) DO NOTHING
),
alloc AS (
  UPDATE mailboxes b SET uidnext = b.uidnext + w.n, highestmodseq = b.highestmodseq + 1
  FROM box JOIN (SELECT mailbox_id, count(*) AS n FROM pair GROUP BY mailbox_id) w
    ON w.mailbox_id = box.id, whole
  WHERE b.id = box.id
  RETURNING b.id, b.uidnext - w.n AS first, b.highestmodseq AS modseq, b.user_id
),
added AS (
  INSERT INTO mail (mailbox_id, uid, modseq, internal_date, flags, content_sha256)
  SELECT a.id, a.first + row_number() OVER (PARTITION BY a.id ORDER BY p.ord) - 1, a.modseq,
    p.idate, coalesce(string_to_array(nullif(p.flags, ''), ' '), '{{}}'), p.sha
  FROM alloc a JOIN pair p ON p.mailbox_id = a.id
  RETURNING id, mailbox_id, uid
),
owner AS (
  SELECT id FROM users WHERE id IN (SELECT user_id FROM alloc) ORDER BY id FOR NO KEY UPDATE
),
counted AS (
  UPDATE users u SET used_messages = u.used_messages + x.n,
    used_bytes = u.used_bytes + x.b
  FROM (SELECT a.user_id, count(*) AS n, sum(i.size)::bigint AS b
        FROM alloc a JOIN pair p ON p.mailbox_id = a.id JOIN item i ON i.sha = p.sha
        GROUP BY a.user_id) x, owner
  WHERE u.id = x.user_id AND owner.id = x.user_id
),
note AS (
  SELECT pg_notify('{CHANNEL}', $17::text) FROM (SELECT 1 FROM alloc LIMIT 1) AS a
)
SELECT (SELECT count(*) FROM whole),
  ARRAY(SELECT ARRAY[id, first, modseq] FROM alloc),
  ARRAY(SELECT ARRAY[mailbox_id, uid, id] FROM added),
  (SELECT count(*) FROM note)
"""


class Job:
    """One caller's delivery: a content (its bytes when not stored yet) into mailboxes."""

    __slots__ = ("content", "data", "dates", "deliveries", "flags")

    def __init__(self, content: ContentInfo, deliveries: Sequence[Delivery],
                 data: bytes | None) -> None:
        self.content = content
        self.deliveries = list(deliveries)
        self.data = data
        self.flags = clean_flags(deliveries[0].flags)
        self.dates: list[datetime] = []


def batchable(deliveries: Sequence[Delivery]) -> bool:
    """Whether :func:`.scripts_append.append` would take these in its one statement (one flag
    set, each mailbox once): the deliveries a batch can hold."""
    if not deliveries:
        return False
    ids = [d.mailbox_id for d in deliveries]
    return (len(set(ids)) == len(ids)
            and len({clean_flags(d.flags) for d in deliveries}) == 1)


class BatchIncomplete(Exception):
    """A mailbox or a content of the batch was not found: nothing was linked, and each
    delivery is tried alone for its own answer."""


def append_batch(jobs: Sequence[Job]) -> Script[list[list[MailEntry]]]:
    """Every job's delivery in one :class:`~.scripts.Solo` statement (``_BATCH``); the
    entries of each, in order. Raises :class:`BatchIncomplete` when something was missing."""
    now = utcnow()
    contents: dict[str, tuple[ContentInfo, bytes | None]] = {}
    pair_sha: list[str] = []
    pair_box: list[int] = []
    pair_date: list[datetime] = []
    pair_flags: list[str] = []
    for job in jobs:
        sha = job.content.sha256
        known = contents.get(sha)
        if known is None or (known[1] is None and job.data is not None):
            contents[sha] = (job.content, job.data)
        job.dates = [entry_date(d.internal_date, now) for d in job.deliveries]
        flags = " ".join(sorted(job.flags))
        for d, date in zip(job.deliveries, job.dates, strict=True):
            pair_sha.append(sha)
            pair_box.append(d.mailbox_id)
            pair_date.append(date)
            pair_flags.append(flags)
    infos = [c for c, _ in contents.values()]
    args: tuple[Any, ...] = (
        [c.sha256 for c in infos], [c.size for c in infos], [c.crlf_size for c in infos],
        [c.crlf_clean for c in infos], [c.fields.message_id for c in infos],
        [c.fields.subject for c in infos], [c.fields.from_ for c in infos],
        [c.fields.to for c in infos], [c.fields.cc for c in infos],
        [c.fields.date for c in infos], now, [data for _, data in contents.values()],
        pair_sha, pair_box, pair_date, pair_flags, format_ids(pair_box).decode("ascii"),
    )
    rows = yield Solo(_BATCH, args)
    whole, alloc, added, _notified = rows[0]
    if not whole:
        raise BatchIncomplete("a mailbox or a content of the batch is missing")
    yield Changed(tuple(sorted(set(pair_box))))
    next_uid = {int(a[0]): int(a[1]) for a in alloc}
    modseq = {int(a[0]): int(a[2]) for a in alloc}
    ids = {(int(a[0]), int(a[1])): int(a[2]) for a in added}
    results: list[list[MailEntry]] = []
    for job in jobs:
        entries = []
        for d, date in zip(job.deliveries, job.dates, strict=True):
            box = d.mailbox_id
            uid = next_uid[box]
            next_uid[box] = uid + 1
            entries.append(MailEntry(id=ids[(box, uid)], mailbox_id=box, uid=uid,
                                     modseq=modseq[box], internal_date=date,
                                     flags=job.flags, content=job.content))
        results.append(entries)
    return results


def maybe_committed(exc: BaseException) -> bool:
    """Whether a failed batch statement may have committed all the same: the connection
    broke (or timed out) with the statement sent, so its outcome is unknown. A deadlock or
    serialisation failure, an error the server reported and :class:`BatchIncomplete` all
    mean it was rolled back."""
    cause = exc.__cause__ if isinstance(exc, StorageError) and exc.__cause__ else exc
    if isinstance(cause, asyncpg.exceptions.TransactionRollbackError):
        return False
    return isinstance(cause, BROKEN_CONNECTION)


class DeliveryBatcher(Coalescer[Job, list[MailEntry]]):
    """The queue of one storage object's deliveries (module docstring). ``run`` runs a
    script in a transaction of its own (the backend's ``_run``). A batch rolled back is
    retried one delivery per statement; one that may have committed is not
    (:func:`maybe_committed`): trying each alone could deliver every message twice, so each
    caller hears the error (SMTP answers 451 and the sender retries, as for a lone
    delivery)."""

    def __init__(self, run: Callable[[Script[Any]], Awaitable[Any]],
                 max_batch: int = MAX_BATCH) -> None:
        super().__init__(
            lambda job: run(append(job.content, job.deliveries, False, job.data)),
            lambda jobs: run(append_batch(jobs)),
            max_batch=max_batch, retry_alone=lambda exc: not maybe_committed(exc))

    async def deliver(self, content: ContentInfo, deliveries: Sequence[Delivery],
                      data: bytes | None) -> list[MailEntry]:
        """Deliver ``content`` (``batchable`` deliveries) once the statement holding it has
        committed."""
        return await self.submit(Job(content, deliveries, data))
