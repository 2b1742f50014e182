"""Per-user usage counters and quota limits (RFC 9208 QUOTA), as transaction scripts.

Why counters: a quota check on every APPEND, COPY and SMTP delivery must not sum the sizes of
every message a user has. ``users.used_bytes``/``users.used_messages`` (schema 5) are changed
by the same transaction that adds or removes mail (append, copy, move, expunge, mailbox
deletion), so they are exact whatever process or node did the change.

Enforcement happens here too, in that same transaction: with ``enforce``, a change that adds
bytes to a user whose use would then exceed ``quota_bytes`` raises :class:`OverQuota` and the
whole transaction rolls back. Checked inside the transaction, two concurrent appends cannot both
squeeze past the limit. A change that adds nothing (a MOVE within one user) never fails, even
for a user already over a lowered quota: it does not make things worse.

Lock order: callers lock mailbox rows first (ascending id); user rows are updated last, in
ascending id order, so two scripts never wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Collection

from mailwing.storage.errors import NotFound, OverQuota
from mailwing.storage.steps import Script, q

__all__ = ["Deltas", "account", "add_delta", "entry_sizes", "set_quota", "usage"]

#: mailbox id -> (messages, bytes) added (negative: removed)
Deltas = dict[int, tuple[int, int]]


def add_delta(deltas: Deltas, mailbox_id: int, messages: int, size: int) -> None:
    old = deltas.get(mailbox_id, (0, 0))
    deltas[mailbox_id] = (old[0] + messages, old[1] + size)


def entry_sizes(mailbox_id: int, uids: Collection[int]) -> Script[tuple[int, int]]:
    """(count, total raw size) of those entries of a mailbox."""
    if not uids:
        return 0, 0
    rows = yield q(
        "SELECT count(*), CAST(coalesce(sum(c.size), 0) AS BIGINT) FROM mail m"
        " JOIN contents c ON c.sha256 = m.content_sha256"
        " WHERE m.mailbox_id = $1 AND m.uid @IN($2)", mailbox_id, sorted(uids),
    )
    return int(rows[0][0]), int(rows[0][1])


def account(deltas: Deltas, *, enforce: bool = False) -> Script[None]:
    """Apply the per-mailbox deltas to their owners' counters (see the module docstring)."""
    wanted = sorted(m for m, d in deltas.items() if d != (0, 0))
    if not wanted:
        return
    if len(wanted) == 1:  # one mailbox (an APPEND, an EXPUNGE): its owner in the UPDATE
        n, b = deltas[wanted[0]]
        got = yield q(f"{_ADD} WHERE id = (SELECT user_id FROM mailboxes WHERE id = $1)"
                      f"{_RETURNING}", wanted[0], n, b)
        _check(got, b, enforce)
        return
    rows = yield q("SELECT id, user_id FROM mailboxes WHERE id @IN($1)", wanted)
    per_user: dict[int, tuple[int, int]] = {}
    for mailbox_id, user_id in rows:
        n, b = deltas[int(mailbox_id)]
        old = per_user.get(int(user_id), (0, 0))
        per_user[int(user_id)] = (old[0] + n, old[1] + b)
    for user_id in sorted(per_user):
        n, b = per_user[user_id]
        if (n, b) == (0, 0):
            continue
        got = yield q(f"{_ADD} WHERE id = $1{_RETURNING}", user_id, n, b)
        _check(got, b, enforce)


_ADD = "UPDATE users SET used_messages = used_messages + $2, used_bytes = used_bytes + $3"
_RETURNING = " RETURNING used_bytes, quota_bytes, address"


def _check(got: list[list], added: int, enforce: bool) -> None:
    """OverQuota when ``enforce`` and the user's use, now ``got``, passed its limit."""
    if enforce and got and added > 0:
        used, limit, address = int(got[0][0]), int(got[0][1]), str(got[0][2])
        if limit > 0 and used > limit:
            raise OverQuota(f"{address} would be over quota ({used} > {limit} bytes)",
                            address)


def usage(user_id: int) -> Script[tuple[int, int]]:
    rows = yield q("SELECT used_messages, used_bytes FROM users WHERE id = $1", user_id)
    if not rows:
        return 0, 0
    return int(rows[0][0]), int(rows[0][1])


def set_quota(address: str, limit_bytes: int | None) -> Script[None]:
    """``None`` (or 0) removes the limit."""
    if limit_bytes is not None and limit_bytes < 0:
        raise ValueError("a quota cannot be negative")
    rows = yield q(
        "UPDATE users SET quota_bytes = $2 WHERE address = $1 RETURNING id",
        address.strip().lower(), int(limit_bytes or 0),
    )
    if not rows:
        raise NotFound(f"no user {address}")
