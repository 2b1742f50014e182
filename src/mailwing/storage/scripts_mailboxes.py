"""Transaction scripts for the IMAP mailbox tree and per-mailbox state (see :mod:`.scripts`).

* DELETE (RFC 3501 section 6.3.4) removes one mailbox with its mail; children are the
  caller's business. Contents left without entries go in the same transaction. The
  subscription of its name stays (RFC 3501 6.3.6: subscriptions are names, kept apart).
* RENAME (RFC 3501 section 6.3.5) renames a mailbox and its inferiors in one transaction,
  keeping UIDVALIDITY and special-use, since the UIDs do not change; the subscriptions of
  the renamed mailboxes move to the new names. Names are first moved
  aside to temporary ones so that a rename such as ``a`` -> ``a/a`` never trips the unique
  (user, name) constraint half way. Renaming INBOX instead creates a new mailbox and moves
  INBOX's entries into it with fresh UIDs (a move, so INBOX records them as expunged); INBOX
  and its inferiors stay.
* STATUS counts (RFC 3501 section 6.3.10) come from one aggregate query; \\Recent is the
  number of entries at or above the mailbox's ``recent_floor``, which
  :func:`claim_recent` hands to one selecting session and then raises to UIDNEXT
  (RFC 3501 section 2.3.2: a message is recent in one session only).
"""

from __future__ import annotations

from mailwing.model import Mailbox
from mailwing.storage.common import MAILBOX_COLUMNS, canonical_mailbox_name, row_to_mailbox
from mailwing.storage.errors import AlreadyExists, NotFound
from mailwing.storage.interface import MailboxCounts
from mailwing.storage.scripts import _create_mailboxes, _drop_orphans, _lock, list_mailboxes
from mailwing.storage.scripts_mail import move_all
from mailwing.storage.scripts_quota import account
from mailwing.storage.steps import Changed, Script, Volatile, q

__all__ = [
    "claim_recent",
    "delete_mailbox",
    "get_mailbox_by_id",
    "list_subscriptions",
    "mailbox_counts",
    "rename_mailbox",
    "set_subscribed",
]

_RENAMING = "#mailwing-renaming#"  # a prefix no client can create (it is not a valid path)


def _named(user_id: int, name: str) -> Script[Mailbox]:
    rows = yield q(
        f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE user_id = $1 AND name = $2",
        user_id, canonical_mailbox_name(name),
    )
    if not rows:
        raise NotFound(f"no mailbox {name}")
    return row_to_mailbox(rows[0])


def get_mailbox_by_id(mailbox_id: int) -> Script[Mailbox | None]:
    rows = yield q(f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1", mailbox_id)
    return row_to_mailbox(rows[0]) if rows else None


def _by_id(mailbox_id: int) -> Script[Mailbox]:
    box = yield from get_mailbox_by_id(mailbox_id)
    if box is None:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    return box


def delete_mailbox(user_id: int, name: str) -> Script[None]:
    box = yield from _named(user_id, name)
    yield from _lock(box.id)  # no append can slip in between the listing and the delete
    rows = yield q("SELECT DISTINCT content_sha256 FROM mail WHERE mailbox_id = $1", box.id)
    sizes = yield q(
        "SELECT count(*), CAST(coalesce(sum(c.size), 0) AS BIGINT) FROM mail m"
        " JOIN contents c ON c.sha256 = m.content_sha256 WHERE m.mailbox_id = $1", box.id)
    yield from account({box.id: (-int(sizes[0][0]), -int(sizes[0][1]))})
    yield q("DELETE FROM mailboxes WHERE id = $1", box.id)  # mail and expunged cascade
    yield Changed((box.id,))  # sessions waiting on it learn that it is gone
    yield from _drop_orphans([r[0] for r in rows])


def rename_mailbox(user_id: int, old: str, new: str) -> Script[Mailbox]:
    old, new = canonical_mailbox_name(old), canonical_mailbox_name(new)
    boxes = {b.name: b for b in (yield from list_mailboxes(user_id))}
    if old not in boxes:
        raise NotFound(f"no mailbox {old}")
    if old == "INBOX":
        if new in boxes:
            raise AlreadyExists(f"mailbox {new} exists already")
        [made] = yield from _create_mailboxes(user_id, [(new, None)])
        yield from move_all(boxes[old].id, made.id)
        return (yield from _by_id(made.id))
    renames = {
        b.id: new + b.name[len(old):]
        for b in boxes.values() if b.name == old or b.name.startswith(old + "/")
    }
    taken = [n for n in renames.values() if n in boxes and boxes[n].id not in renames]
    if old == new or taken:
        raise AlreadyExists(f"mailbox {new if old == new else taken[0]} exists already")
    ids = sorted(renames)
    yield q(
        f"UPDATE mailboxes SET name = '{_RENAMING}' || CAST(id AS TEXT) WHERE id @IN($1)", ids
    )
    for mailbox_id in ids:
        yield q("UPDATE mailboxes SET name = $2 WHERE id = $1", mailbox_id, renames[mailbox_id])
    # subscriptions of the renamed mailboxes follow them; others (names without a mailbox,
    # or one already subscribed at a new name) are left alone (RFC 3501 6.3.6)
    moved = [boxes[n] for n in boxes if boxes[n].id in renames and boxes[n].subscribed]
    if moved:
        yield q(
            "DELETE FROM subscriptions WHERE user_id = $1 AND name @IN($2)",
            user_id, [b.name for b in moved],
        )
        for b in moved:
            yield q(
                "INSERT INTO subscriptions (user_id, name) VALUES ($1, $2)"
                " ON CONFLICT (user_id, name) DO NOTHING",
                user_id, renames[b.id],
            )
    return (yield from _by_id(boxes[old].id))


def set_subscribed(user_id: int, name: str, subscribed: bool) -> Script[None]:
    """A name, with or without a mailbox (RFC 3501 6.3.6/6.3.7); idempotent."""
    users = yield q("SELECT id FROM users WHERE id = $1", user_id)
    if not users:
        raise NotFound(f"no user with id {user_id}")
    if subscribed:
        yield q(
            "INSERT INTO subscriptions (user_id, name) VALUES ($1, $2)"
            " ON CONFLICT (user_id, name) DO NOTHING",
            user_id, canonical_mailbox_name(name),
        )
    else:
        yield q(
            "DELETE FROM subscriptions WHERE user_id = $1 AND name = $2",
            user_id, canonical_mailbox_name(name),
        )


def list_subscriptions(user_id: int) -> Script[list[str]]:
    rows = yield q("SELECT name FROM subscriptions WHERE user_id = $1", user_id)
    return sorted((str(r[0]) for r in rows), key=lambda n: (n != "INBOX", n))


def mailbox_counts(mailbox_id: int) -> Script[MailboxCounts]:
    rows = yield q(
        "SELECT count(m.id),"
        " sum(CASE WHEN m.id IS NULL OR @HASFLAG(m.flags, $2) THEN 0 ELSE 1 END),"
        " sum(CASE WHEN m.uid >= b.recent_floor THEN 1 ELSE 0 END),"
        " sum(c.crlf_size)"
        " FROM mailboxes b LEFT JOIN mail m ON m.mailbox_id = b.id"
        " LEFT JOIN contents c ON c.sha256 = m.content_sha256"
        " WHERE b.id = $1 GROUP BY b.id",
        mailbox_id, "\\Seen",
    )
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    messages, unseen, recent, size = (int(v or 0) for v in rows[0])
    return MailboxCounts(messages=messages, unseen=unseen, recent=recent, size=size)


def recent_claimed(mailbox_id: int) -> Script[int | None]:
    """Read only: the floor :func:`claim_recent` would return if it would not raise it (no
    new UID since the last claim), else None. NotFound if there is no such mailbox."""
    rows = yield q("SELECT recent_floor, uidnext FROM mailboxes WHERE id = $1", mailbox_id)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    return claimed_floor(int(rows[0][0]), int(rows[0][1]))


def claimed_floor(floor: int, uidnext: int) -> int | None:
    """The \\Recent floor when every UID given out (below ``uidnext``) is below it, so
    there is nothing new to claim; None when a claim would raise it."""
    return floor if uidnext <= floor else None


def claim_recent(mailbox_id: int, volatile: bool = False) -> Script[int]:
    if volatile:
        yield Volatile()  # a claim lost in a power cut only makes the messages \Recent again
    rows = yield q(
        "UPDATE mailboxes SET recent_floor = recent_floor WHERE id = $1"
        " RETURNING recent_floor, uidnext",
        mailbox_id,
    )  # the row stays locked: a concurrent claim waits and then gets the raised floor
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    floor, uidnext = int(rows[0][0]), int(rows[0][1])
    if uidnext > floor:
        yield q("UPDATE mailboxes SET recent_floor = $2 WHERE id = $1", mailbox_id, uidnext)
    return floor
