"""Transaction scripts for IMAP flag changes, copies, moves and change tracking (see
:mod:`.scripts`).

* STORE (RFC 3501 section 6.4.6) with CONDSTORE's UNCHANGEDSINCE (RFC 7162 section 3.1.3):
  the mailbox row is locked, the entries read, the new flag sets computed here; only entries
  whose set really changes are written, all with one new MODSEQ, grouped into one UPDATE per
  resulting flag set. Entries modified after UNCHANGEDSINCE are left alone and reported.
  ``\\Recent`` is never stored (it belongs to a session, RFC 3501 section 2.3.2).
* COPY (RFC 3501 section 6.4.7) and MOVE (RFC 6851) link the same content rows again (no
  bytes are copied), keep flags and INTERNALDATE, take consecutive UIDs in the target and
  return the COPYUID pairs (RFC 4315 section 3). MOVE expunges the sources in the same
  transaction, leaving ``expunged`` rows exactly as EXPUNGE does. Both mailboxes are locked
  in ascending id order, like appends, so that no two scripts deadlock.
* Change tracking (RFC 7162 sections 3.1 and 3.2.10): entries and expunged UIDs above a
  MODSEQ, bounded by the HIGHESTMODSEQ read first, so that a change committed meanwhile is
  reported by the next call rather than half now. When the expunged rows after that MODSEQ
  have been pruned (``limits.expunged_retention``), every UID below UIDNEXT that is not in the
  mailbox is reported instead: a superset the caller matches against what it holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from mailwing.model import MailEntry
from mailwing.storage.common import MAIL_COLUMNS, clean_flags, decode_flags, row_to_entry
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import FlagMode
from mailwing.storage.scripts import _allocate, _lock, _remove_entries
from mailwing.storage.scripts_quota import Deltas, account, entry_sizes
from mailwing.storage.scripts_vanished import expunged_by_absence
from mailwing.storage.steps import Script, Volatile, q

__all__ = [
    "copy_mail",
    "get_content_cache",
    "mail_changes",
    "mailbox_digests",
    "move_all",
    "set_content_cache",
    "set_flags",
]

_ENTRIES = f"SELECT {MAIL_COLUMNS} FROM mail m JOIN contents c ON c.sha256 = m.content_sha256"


def _uid_list(uids: Collection[int]) -> list[int]:
    return sorted({int(u) for u in uids})


def _new_flags(old: frozenset[str], flags: frozenset[str], mode: FlagMode) -> frozenset[str]:
    if mode == "add":
        return old | flags
    if mode == "remove":
        return old - flags
    if mode == "replace":
        return flags
    raise ValueError(f"unknown flag mode {mode!r}")


def flags_unchanged(
    mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
    unchanged_since: int | None,
) -> Script[list[int] | None]:
    """Read only: if :func:`set_flags` with these arguments would change nothing now, the
    MODIFIED list it would return (RFC 7162 UNCHANGEDSINCE; empty without it), else None.
    Lets a no-op STORE skip the write transaction (and its fsync)."""
    wanted, wanted_flags = _uid_list(uids), clean_flags(flags)
    _new_flags(frozenset(), wanted_flags, mode)
    if not wanted:
        return []
    rows = yield q(
        "SELECT uid, modseq, flags FROM mail WHERE mailbox_id = $1 AND uid @IN($2)",
        mailbox_id, wanted,
    )
    modified: list[int] = []
    for uid, modseq, stored in rows:
        if unchanged_since is not None and int(modseq) > unchanged_since:
            modified.append(int(uid))
            continue
        old = decode_flags(stored)
        if _new_flags(old, wanted_flags, mode) != old:
            return None
    return sorted(modified)


def set_flags(
    mailbox_id: int, uids: Collection[int], flags: Collection[str], mode: FlagMode,
    unchanged_since: int | None, volatile: bool = False,
) -> Script[tuple[list[MailEntry], list[int]]]:
    """STORE; ``volatile``: the commit need not wait for the disk (see
    :class:`.steps.Volatile`)."""
    if volatile:
        yield Volatile()
    wanted, wanted_flags = _uid_list(uids), clean_flags(flags)
    _new_flags(frozenset(), wanted_flags, mode)  # an unknown mode fails before any work
    if not wanted:
        return [], []
    yield from _lock(mailbox_id)
    rows = yield q(
        f"{_ENTRIES} WHERE m.mailbox_id = $1 AND m.uid @IN($2) ORDER BY m.uid",
        mailbox_id, wanted,
    )
    modified: list[int] = []
    groups: dict[frozenset[str], list[MailEntry]] = defaultdict(list)
    for entry in map(row_to_entry, rows):
        if unchanged_since is not None and entry.modseq > unchanged_since:
            modified.append(entry.uid)
            continue
        new = _new_flags(entry.flags, wanted_flags, mode)
        if new != entry.flags:
            groups[new].append(entry)
    if not groups:
        return [], modified
    _, modseq = yield from _allocate(mailbox_id, 0)
    changed: list[MailEntry] = []
    for new, entries in groups.items():
        yield q(
            "UPDATE mail SET flags = $3, modseq = $4 WHERE mailbox_id = $1 AND uid @IN($2)",
            mailbox_id, [e.uid for e in entries], new, modseq,
        )
        changed.extend(e._replace(flags=new, modseq=modseq) for e in entries)
    return sorted(changed, key=lambda e: e.uid), modified


def copy_mail(
    src: int, uids: Collection[int], dst: int, move: bool, enforce_quota: bool = False
) -> Script[list[tuple[int, int]]]:
    wanted = _uid_list(uids)
    if not wanted:
        return []
    for mailbox_id in sorted({src, dst}):
        yield from _lock(mailbox_id)
    rows = yield q(
        "SELECT uid FROM mail WHERE mailbox_id = $1 AND uid @IN($2) ORDER BY uid", src, wanted
    )
    present = [int(r[0]) for r in rows]
    if not present:
        return []
    first, dst_modseq = yield from _allocate(dst, len(present))
    yield q(
        "INSERT INTO mail (mailbox_id, uid, modseq, internal_date, flags, content_sha256)"
        " SELECT CAST($3 AS BIGINT), CAST($4 AS BIGINT) - 1 + row_number() OVER (ORDER BY uid),"
        " CAST($5 AS BIGINT), internal_date, flags,"
        " content_sha256 FROM mail WHERE mailbox_id = $1 AND uid @IN($2)",
        src, present, dst, first, dst_modseq,
    )
    count, size = yield from entry_sizes(src, present)
    deltas: Deltas = {dst: (count, size)}
    if move:
        src_modseq = dst_modseq if src == dst else (yield from _allocate(src, 0))[1]
        # contents stay: dst uses them
        yield from _remove_entries(src, present, src_modseq, deltas)
    yield from account(deltas, enforce=enforce_quota)
    return [(uid, first + i) for i, uid in enumerate(present)]


def move_all(src: int, dst: int) -> Script[list[tuple[int, int]]]:
    """Move every entry of ``src`` to ``dst`` (renaming INBOX)."""
    rows = yield q("SELECT uid FROM mail WHERE mailbox_id = $1", src)
    return (yield from copy_mail(src, [r[0] for r in rows], dst, True))


def mail_changes(
    mailbox_id: int, since_modseq: int
) -> Script[tuple[int, list[MailEntry], list[int]]]:
    rows = yield q(
        "SELECT highestmodseq, vanished_floor, uidnext FROM mailboxes WHERE id = $1",
        mailbox_id,
    )
    if not rows:
        raise NotFound(f"no mailbox with id {mailbox_id}")
    highest, floor, uidnext = (int(v) for v in rows[0])
    if highest <= since_modseq:
        return highest, [], []
    entries = yield q(
        f"{_ENTRIES} WHERE m.mailbox_id = $1 AND m.modseq > $2 AND m.modseq <= $3"
        " ORDER BY m.uid",
        mailbox_id, since_modseq, highest,
    )
    if since_modseq < floor:  # expunged rows pruned: every UID given out and not here now
        gone = yield from expunged_by_absence(mailbox_id, uidnext - 1)
        return highest, [row_to_entry(r) for r in entries], gone
    # Sorted here, not by ORDER BY uid: SQLite would then walk the mailbox's whole expunged
    # history in UID order (its primary key) instead of the (mailbox_id, modseq) index, and
    # every catch-up would grow with that history (up to limits.expunged_retention rows).
    gone_rows = yield q(
        "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 AND modseq <= $3",
        mailbox_id, since_modseq, highest,
    )
    return highest, [row_to_entry(r) for r in entries], sorted(int(r[0]) for r in gone_rows)


def get_content_cache(sha256: str) -> Script[dict[str, bytes]]:
    rows = yield q("SELECT key, value FROM content_cache WHERE sha256 = $1", sha256)
    return {str(r[0]): bytes(r[1]) for r in rows}


def set_content_cache(sha256: str, values: dict[str, bytes]) -> Script[None]:
    """NotFound (a foreign key) when no content of that digest is stored."""
    for key in sorted(values):
        yield q(
            "INSERT INTO content_cache (sha256, key, value) VALUES ($1, $2, $3)"
            " ON CONFLICT (sha256, key) DO UPDATE SET value = excluded.value",
            sha256, key, bytes(values[key]),
        )


def mailbox_digests(mailbox_id: int) -> Script[list[tuple[str, str | None, int]]]:
    """(sha256, Message-ID, CRLF size) per entry; see ``Storage.mailbox_digests``."""
    rows = yield q(
        "SELECT m.content_sha256, c.message_id, c.crlf_size FROM mail m"
        " JOIN contents c ON c.sha256 = m.content_sha256 WHERE m.mailbox_id = $1"
        " ORDER BY m.uid", mailbox_id,
    )
    return [(str(r[0]), r[1], int(r[2])) for r in rows]
