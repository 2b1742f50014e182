"""Scripts for an IMAP session's catch-up with other sessions taken together with the work
around it, so that one transaction (one trip to the SQLite database thread, one PostgreSQL
connection) does what took two or three (issue #9, the mixed IMAP load).

Every IMAP command ends with a catch-up (:meth:`Storage.mail_changes` since the session's
HIGHESTMODSEQ), and a catch-up that brings new mail claims it as \\Recent
(:meth:`Storage.claim_recent`: a read when another session claimed it already, else a write).
A STORE, its catch-up and that claim are one write transaction here; a catch-up and the
read-only check of the claim are one read. The scripts that do the work are the backend's own
(passed in: PostgreSQL has one-statement versions), so the answers are exactly theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from mailwing.model import MailEntry
from mailwing.storage.interface import FlagMode
from mailwing.storage.scripts_mail import flags_unchanged
from mailwing.storage.scripts_mailboxes import recent_claimed
from mailwing.storage.steps import Script

__all__ = ["Changes", "brings_new", "changes_and_claimed", "unchanged_with_changes",
           "with_changes"]

T = TypeVar("T")

#: What :meth:`Storage.mail_changes` returns: (HIGHESTMODSEQ, changed entries, expunged UIDs).
Changes = tuple[int, list[MailEntry], list[int]]
MailChanges = Callable[[int, int], Script[Changes]]


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
