"""SQLite: an IMAP session's catch-up (:meth:`Storage.mail_changes`) in one statement.

Why (issue #9, the mixed IMAP load): every IMAP command ends with a catch-up, and every
STORE, APPEND and EXPUNGE runs one inside its write transaction. The portable script
(:func:`mailwing.storage.scripts_mail.mail_changes`) reads the mailbox's row, then the
changed entries, then the expunged UIDs: three statements and a row step per entry. The
``sqlite3`` module lets go of the GIL for every step, and in the writer thread every
hand-over happens while the writers' lock is held, with the node's other writes queued
behind it: under the mixed load the lock was held 87-93 % of the time, the holder on the CPU
for less than half of it (README, "Performance"). Here the mailbox's row carries the
entries and the UIDs as two JSON arrays built by SQLite (``json_group_array``): one
statement and one row. The answers are the portable script's (the same columns through the
same :func:`~mailwing.storage.common.row_to_entry`, entries by UID, UIDs ascending), and
the reads use the same indexes (``tests/storage/test_expunged_plan.py``).

When the session is older than the mailbox's memory of expunges (``vanished_floor``), the
UIDs come from the live ones, as in the portable script: a second statement, rare.
"""

from __future__ import annotations

from mailwing.model import MailEntry
from mailwing.storage.common import MAIL_COLUMNS, row_to_entry
from mailwing.storage.errors import NotFound
from mailwing.storage.scripts_vanished import expunged_by_absence
from mailwing.storage.steps import Script, q

__all__ = ["mail_changes"]

_CHANGES = f"""
SELECT b.highestmodseq, b.vanished_floor, b.uidnext,
  CASE WHEN b.highestmodseq > $2 THEN (
    SELECT json_group_array(json_array({MAIL_COLUMNS}))
    FROM mail m JOIN contents c ON c.sha256 = m.content_sha256
    WHERE m.mailbox_id = $1 AND m.modseq > $2 AND m.modseq <= b.highestmodseq) END,
  CASE WHEN b.highestmodseq > $2 AND $2 >= b.vanished_floor THEN (
    SELECT json_group_array(e.uid) FROM expunged e
    WHERE e.mailbox_id = $1 AND e.modseq > $2 AND e.modseq <= b.highestmodseq) END
FROM mailboxes b WHERE b.id = $1
"""


def mail_changes(
    mailbox_id: int, since_modseq: int
) -> Script[tuple[int, list[MailEntry], list[int]]]:
    """(HIGHESTMODSEQ, the entries changed since ``since_modseq`` by UID, the UIDs expunged
    since then, ascending); NotFound without the mailbox."""
    import json  # here: ``mailwing deliver`` imports this module and never catches up

    rows = yield q(_CHANGES, mailbox_id, since_modseq)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    highest, _floor, uidnext, entries_json, gone_json = rows[0]
    highest = int(highest)
    if highest <= since_modseq:
        return highest, [], []
    entries = sorted((row_to_entry(tuple(r)) for r in json.loads(entries_json)),
                     key=lambda e: e.uid)
    if gone_json is not None:
        return highest, entries, sorted(int(u) for u in json.loads(gone_json))
    # expunged rows pruned: every UID given out and not here now
    return highest, entries, (yield from expunged_by_absence(mailbox_id, int(uidnext) - 1))
