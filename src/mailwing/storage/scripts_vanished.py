"""Transaction scripts for QRESYNC's memory of expunged UIDs (RFC 7162 sections 3.2.5, 3.2.10).

Every expunge leaves an ``expunged`` row (uid, modseq of the removal; see
:func:`mailwing.storage.scripts._remove_entries`). That table would grow without bound, so
:func:`prune_expunged` keeps only the newest rows of a mailbox and raises the mailbox's
``vanished_floor`` to the highest mod-sequence it dropped. :func:`vanished_since` then answers
only when its list is complete (``since >= vanished_floor``); otherwise it returns None and the
caller falls back to what RFC 7162 section 3.2.5.2 allows: report every UID the client may know
that does not exist any more (UIDs are never reused, so that set is exact).
"""

from __future__ import annotations

from mailwing.storage.errors import NotFound
from mailwing.storage.steps import Script, q

__all__ = ["absent_uids", "expunged_by_absence", "prune_expunged", "vanished_since"]


def absent_uids(live: list[int], top: int) -> list[int]:
    """UIDs 1..``top`` not in the ascending list ``live`` (UIDs are never reused, so these
    are exactly the ones expunged so far)."""
    out: list[int] = []
    nxt = 1
    for uid in live:
        if uid > top:
            break
        out.extend(range(nxt, uid))
        nxt = uid + 1
    out.extend(range(nxt, top + 1))
    return out


def expunged_by_absence(mailbox_id: int, top: int) -> Script[list[int]]:
    """Every UID up to ``top`` that the mailbox no longer holds, read from the live ones:
    what a catch-up reports when the session is older than the ``expunged`` rows kept."""
    live = yield q("SELECT uid FROM mail WHERE mailbox_id = $1 ORDER BY uid", mailbox_id)
    return absent_uids([int(r[0]) for r in live], top)


def vanished_since(mailbox_id: int, since_modseq: int) -> Script[list[int] | None]:
    rows = yield q("SELECT vanished_floor FROM mailboxes WHERE id = $1", mailbox_id)
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    if since_modseq < int(rows[0][0]):
        return None
    gone = yield q(  # sorted here: see mail_changes (an ORDER BY uid walks the whole history)
        "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2",
        mailbox_id, since_modseq,
    )
    return sorted(int(r[0]) for r in gone)


def prune_expunged(mailbox_id: int, keep: int) -> Script[int]:
    """Forget all but about the newest ``keep`` expunged UIDs of the mailbox (rows sharing the
    cut-off mod-sequence go together); return how many rows were removed."""
    keep = max(0, int(keep))
    rows = yield q(
        "SELECT modseq FROM expunged WHERE mailbox_id = $1 ORDER BY modseq DESC"
        " LIMIT 1 OFFSET $2", mailbox_id, keep,
    )
    if not rows:
        return 0
    cut = int(rows[0][0])
    gone = yield q(
        "DELETE FROM expunged WHERE mailbox_id = $1 AND modseq <= $2 RETURNING uid",
        mailbox_id, cut,
    )
    yield q(
        "UPDATE mailboxes SET vanished_floor = $2 WHERE id = $1 AND vanished_floor < $2",
        mailbox_id, cut,
    )
    return len(gone)
