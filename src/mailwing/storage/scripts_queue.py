"""Transaction scripts for the outbound queue (see :mod:`.scripts` for the style).

Why in the database and not in spool files: the ``250`` for a remote recipient must mean the
message is durable, and the same database already makes the content and the local copies
durable in one commit, on one node (SQLite) or on many (PostgreSQL). So a message for local
and remote recipients is linked into the INBOXes *and* queued in one transaction
(:func:`append_and_enqueue`), and a queued message survives restarts and SIGKILL.

* Content: stored once (the shared ``contents`` row); ``queue.content_sha256`` points at it.
  The schema's trigger ``contents_kept_while_queued`` makes the orphan clean-up of an
  expunge skip a content that a queue row still needs; once the last queue row and the
  last mail entry are gone, :func:`scripts._drop_orphans` removes it as usual.
* Leases (at-least-once delivery without double sending while a lease lives): a claim picks
  due, unleased rows and then ``UPDATE``s them *with the same conditions repeated*, so two
  claimers racing for a row serialise on its lock (PostgreSQL re-checks the condition on the
  committed row under READ COMMITTED; SQLite has one writer) and only one gets it back from
  ``RETURNING``. A lease that expired (its worker died) may be claimed by anyone.
* Settling an attempt (per-recipient outcome, next attempt time, lease release, deletion
  when nothing is left, and the DSN) is one transaction guarded by the lease owner, so a
  worker whose lease was taken over cannot overwrite the newer worker's state, and a DSN is
  stored exactly when its message's outcome is.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailwing.model import ContentInfo, MailEntry
from mailwing.storage.common import CONTENT_COLUMNS, row_to_content
from mailwing.storage.interface import (
    Bounce,
    Delivery,
    Outbound,
    QueuedMessage,
    QueuedRecipient,
    RecipientOutcome,
)
from mailwing.storage.scripts import _drop_orphans, _link_content, append
from mailwing.storage.steps import Script, q

__all__ = [
    "append_and_enqueue",
    "claim_queued",
    "delete_queued",
    "enqueue",
    "get_queued",
    "list_queued",
    "renew_lease",
    "retry_queued",
    "settle_queued",
]

_QUEUE = (
    "SELECT g.id, g.sender, g.created_at, g.next_attempt, g.attempts, g.lease_owner,"
    f" g.lease_until, {CONTENT_COLUMNS} FROM queue g JOIN contents c ON c.sha256 ="
    " g.content_sha256"
)
_FREE = "next_attempt <= $1 AND (lease_until IS NULL OR lease_until < $1)"


def enqueue(content: ContentInfo, outbound: Outbound) -> Script[None]:
    recipients = sorted(set(outbound.recipients))
    if not recipients:
        raise ValueError("a queued message needs at least one recipient")
    yield from _link_content(content)
    due = outbound.created_at if outbound.next_attempt is None else outbound.next_attempt
    yield q(
        "INSERT INTO queue (id, content_sha256, sender, created_at, next_attempt, attempts)"
        " VALUES ($1, $2, $3, $4, $5, 0)",
        outbound.queue_id, content.sha256, outbound.sender, float(outbound.created_at),
        float(due),
    )
    for address in recipients:
        yield q("INSERT INTO queue_recipients (queue_id, address) VALUES ($1, $2)",
                outbound.queue_id, address)


def append_and_enqueue(
    content: ContentInfo, deliveries: Sequence[Delivery], outbound: Outbound | None
) -> Script[list[MailEntry]]:
    entries = yield from append(content, deliveries)
    if outbound is not None:
        yield from enqueue(content, outbound)
    return entries


def _load(ids: Sequence[str]) -> Script[list[QueuedMessage]]:
    if not ids:
        return []
    rows = yield q(f"{_QUEUE} WHERE g.id @IN($1)", sorted(ids))
    recipients = yield q(
        "SELECT queue_id, address, status, last_reply, remote_mta FROM queue_recipients"
        " WHERE queue_id @IN($1) ORDER BY queue_id, address", sorted(ids),
    )
    by_id: dict[str, list[QueuedRecipient]] = {}
    for r in recipients:
        by_id.setdefault(str(r[0]), []).append(
            QueuedRecipient(str(r[1]), r[2], str(r[3]), str(r[4])))
    found = [
        QueuedMessage(
            queue_id=str(r[0]), content=row_to_content(r[7:]), sender=str(r[1]),
            created_at=float(r[2]), next_attempt=float(r[3]), attempts=int(r[4]),
            lease_owner=r[5], lease_until=None if r[6] is None else float(r[6]),
            recipients=tuple(by_id.get(str(r[0]), ())),
        )
        for r in rows
    ]
    return sorted(found, key=lambda m: (m.created_at, m.queue_id))


def claim_queued(
    worker: str, now: float, lease_until: float, limit: int
) -> Script[list[QueuedMessage]]:
    rows = yield q(f"SELECT id FROM queue WHERE {_FREE} ORDER BY next_attempt, id LIMIT $2",
                   float(now), int(limit))
    if not rows:
        return []
    claimed = yield q(
        "UPDATE queue SET lease_owner = $2, lease_until = $3, attempts = attempts + 1"
        f" WHERE id @IN($4) AND {_FREE} RETURNING id",
        float(now), worker, float(lease_until), [str(r[0]) for r in rows],
    )
    return (yield from _load([str(r[0]) for r in claimed]))


def renew_lease(queue_id: str, worker: str, lease_until: float) -> Script[bool]:
    rows = yield q(
        "UPDATE queue SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 RETURNING id",
        queue_id, worker, float(lease_until),
    )
    return bool(rows)


def settle_queued(
    queue_id: str, worker: str, outcomes: Sequence[RecipientOutcome], next_attempt: float,
    bounce: Bounce | None,
) -> Script[bool]:
    rows = yield q(
        "UPDATE queue SET lease_owner = NULL, lease_until = NULL, next_attempt = $3"
        " WHERE id = $1 AND lease_owner = $2 RETURNING content_sha256",
        queue_id, worker, float(next_attempt),
    )
    if not rows:
        return False
    for o in outcomes:
        yield q(
            "UPDATE queue_recipients SET status = $3, last_reply = $4, remote_mta = $5"
            " WHERE queue_id = $1 AND address = $2",
            queue_id, o.address, o.status, o.reply[:2000], o.remote_mta[:255],
        )
    left = yield q(
        "SELECT count(*) FROM queue_recipients WHERE queue_id = $1"
        " AND status @IN($2)", queue_id, ["pending", "deferred"],
    )
    if not left[0][0]:
        yield from _remove(queue_id)
    if bounce is not None:
        yield from append_and_enqueue(bounce.content, list(bounce.deliveries), bounce.outbound)
    return True


def _remove(queue_id: str) -> Script[bool]:
    rows = yield q("DELETE FROM queue WHERE id = $1 RETURNING content_sha256", queue_id)
    if rows:
        yield from _drop_orphans([str(rows[0][0])])  # recipients go by ON DELETE CASCADE
    return bool(rows)


def list_queued() -> Script[list[QueuedMessage]]:
    rows = yield q("SELECT id FROM queue")
    return (yield from _load([str(r[0]) for r in rows]))


def get_queued(queue_id: str) -> Script[QueuedMessage | None]:
    found = yield from _load([queue_id])
    return found[0] if found else None


def retry_queued(queue_id: str, now: float) -> Script[bool]:
    rows = yield q("UPDATE queue SET next_attempt = $2 WHERE id = $1 RETURNING id",
                   queue_id, float(now))
    return bool(rows)


def delete_queued(queue_id: str) -> Script[bool]:
    return (yield from _remove(queue_id))
