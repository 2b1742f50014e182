"""Scripts for an IMAP session's catch-up with other sessions taken together with the work
around it, so that one transaction (one trip to the SQLite database thread, one PostgreSQL
connection) does what took two or three (issue #9, the mixed IMAP load).

Every IMAP command ends with a catch-up (:meth:`Storage.mail_changes` since the session's
HIGHESTMODSEQ), and a catch-up that brings new mail claims it as \\Recent
(:meth:`Storage.claim_recent`: a read when another session claimed it already, else a write).
A STORE, its catch-up and that claim are one write transaction here, and so are an EXPUNGE,
the catch-up it needs first (a \\Deleted set by another session counts) and the claim; a
catch-up and the read-only check of the claim are one read. The scripts that do the work
are the backend's own (passed in: PostgreSQL has one-statement versions), so the answers
are exactly theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from mailwing.model import MailEntry
from mailwing.storage.interface import FlagMode
from mailwing.storage.scripts_mail import flags_unchanged
from mailwing.storage.scripts_mailboxes import recent_claimed
from mailwing.storage.steps import Script, Volatile

__all__ = ["Changes", "brings_new", "changes_and_claimed", "doomed", "expunge_with_changes",
           "unchanged_with_changes", "with_changes"]

T = TypeVar("T")

#: What :meth:`Storage.mail_changes` returns: (HIGHESTMODSEQ, changed entries, expunged UIDs).
Changes = tuple[int, list[MailEntry], list[int]]
MailChanges = Callable[[int, int], Script[Changes]]
DELETED = "\\Deleted"


def brings_new(changes: Changes, claim_from: int | None) -> bool:
    """Whether the catch-up holds an entry at or above ``claim_from`` (the first UID the
    session does not know of; None: it claims nothing, e.g. a read-only session)."""
    return claim_from is not None and any(e.uid >= claim_from for e in changes[1])


def changes_and_claimed(mail_changes: MailChanges, mailbox_id: int, since_modseq: int,
                        claim_from: int | None) -> Script[tuple[Changes, bool, int | None]]:
    """Read only: (the changes, whether they bring new mail, the \\Recent floor if another
    session has claimed it all already). (..., True, None): the claim must be written."""
    changes = yield from mail_changes(mailbox_id, since_modseq)
    if not brings_new(changes, claim_from):
        return changes, False, None
    return changes, True, (yield from recent_claimed(mailbox_id))


def unchanged_with_changes(
    mail_changes: MailChanges, mailbox_id: int, uids: Collection[int],
    flags: Collection[str], mode: FlagMode, unchanged_since: int | None, since_modseq: int,
    claim_from: int | None,
) -> Script[tuple[list[int], tuple[Changes, bool, int | None]] | None]:
    """Read only: a STORE that changes nothing (:func:`.scripts_mail.flags_unchanged`: its
    MODIFIED list) and :func:`changes_and_claimed` after it; None when the STORE must write."""
    modified = yield from flags_unchanged(mailbox_id, uids, flags, mode, unchanged_since)
    if modified is None:
        return None
    return modified, (yield from changes_and_claimed(mail_changes, mailbox_id, since_modseq,
                                                     claim_from))


def with_changes(
    script: Script[T], mail_changes: MailChanges, claim_recent: Callable[[int], Script[int]],
    mailbox_id: int, since_modseq: int, claim_from: int | None,
) -> Script[tuple[T, Changes, int | None]]:
    """``script`` (a STORE, an APPEND), then the catch-up after it, then the \\Recent
    claim if the catch-up brings new mail. ``script`` goes first: a ``Volatile`` first step
    of it stays the first step of the whole."""
    result = yield from script
    changes = yield from mail_changes(mailbox_id, since_modseq)
    if not brings_new(changes, claim_from):
        return result, changes, None
    return result, changes, (yield from claim_recent(mailbox_id))


def doomed(deleted: Collection[int], highest_known: int, changes: Changes) -> list[int]:
    """What an IMAP EXPUNGE removes once it has caught up with ``changes``: the UIDs the
    session knows (at most ``highest_known``) that carry \\Deleted, ``deleted`` being those
    it knew of before the catch-up. A changed entry's new flags decide; new mail (above
    ``highest_known``) is not yet in the session's numbering and stays, as it did when
    the session caught up first and chose from its listing afterwards."""
    out = set(deleted)
    for entry in changes[1]:
        if entry.uid <= highest_known:
            if DELETED in entry.flags:
                out.add(entry.uid)
            else:
                out.discard(entry.uid)
    return sorted(out)


def expunge_with_changes(
    expunge: Callable[[int, list[int]], Script[list[int]]], mail_changes: MailChanges,
    claim_recent: Callable[[int], Script[int]], mailbox_id: int, deleted: Collection[int],
    highest_known: int, since_modseq: int, claim_from: int | None, volatile: bool,
) -> Script[tuple[list[int], Changes, int | None]]:
    """An IMAP EXPUNGE in one write transaction: the catch-up since ``since_modseq``, the
    removal of what it leaves \\Deleted (:func:`doomed`), then the \\Recent claim if the
    catch-up brought new mail. (The UIDs removed, the changes, the floor or None.)
    ``volatile``: yielded first, for the whole transaction (a catch-up is a read, an
    expunge and a claim may be lost in a power cut without losing mail)."""
    if volatile:
        yield Volatile()
    changes = yield from mail_changes(mailbox_id, since_modseq)
    uids = doomed(deleted, highest_known, changes)
    removed = (yield from expunge(mailbox_id, uids)) if uids else []
    if not brings_new(changes, claim_from):
        return removed, changes, None
    return removed, changes, (yield from claim_recent(mailbox_id))
