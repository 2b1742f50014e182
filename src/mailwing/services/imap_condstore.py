"""CONDSTORE and QRESYNC (RFC 7162) over the selected view: what a resynchronising client
must be told, computed from the session's :class:`~mailwing.services.imap_selected.SelectedView`
and the storage's memory of expunged UIDs.

Why here: the server handlers only pick the responses; which UIDs have vanished and which
messages changed since a client's mod-sequence is mailbox logic shared by SELECT/EXAMINE
``(QRESYNC ...)`` (section 3.2.5) and ``UID FETCH ... (CHANGEDSINCE n VANISHED)`` (3.2.6).

Mod-sequences are per message (one value for all of its metadata: RFC 7162 section 3.1.5
allows this), kept in ``mail.modseq`` and ``mailboxes.highestmodseq`` and raised inside each
changing transaction, so every process and node sees one strictly increasing sequence.

Expunged UIDs are remembered up to ``limits.expunged_retention`` per mailbox
(:meth:`Storage.prune_expunged`). When a client asks from before that window,
:meth:`Storage.vanished_since` returns None and the answer becomes every UID the client may
know (its known-uids, else ``1:UIDNEXT-1``) that does not exist now: RFC 7162 section 3.2.5.2
lets the server send UIDs the client already knew were gone, and as UIDs are never reused that
set is never too small. Ranges are computed interval by interval, so a large UID space costs
no more than the mailbox's own size.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from mailwing.model import MailEntry
from mailwing.proto.imap.seqset import STAR, SequenceSet
from mailwing.services.imap_selected import SelectedView
from mailwing.storage.interface import Storage

__all__ = ["PRUNE_EVERY_MAX", "Resync", "missing_uids", "prune_every", "prune_history", "resync",
           "vanished_in"]

MAX_UID = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Resync:
    """What a QRESYNC SELECT sends after the usual responses: ``* VANISHED (EARLIER)`` for
    ``vanished`` (when any), then one FETCH per ``changed`` entry."""

    vanished: list[int]
    changed: list[MailEntry]


def _ranges(uids: SequenceSet | None, top: int) -> list[tuple[int, int]]:
    """Inclusive, sorted, merged ranges of a UID set (``*`` and no set mean ``top``)."""
    if uids is None:
        return [(1, top)] if top >= 1 else []
    spans = []
    for a, b in uids.ranges:
        a = top if a == STAR else a
        b = top if b == STAR else b
        lo, hi = min(a, b), min(max(a, b), top)
        if hi >= max(lo, 1):
            spans.append((max(lo, 1), hi))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def missing_uids(existing: list[int], ranges: Iterable[tuple[int, int]]) -> list[int]:
    """UIDs inside ``ranges`` that are not in ``existing`` (sorted ascending)."""
    out: list[int] = []
    for lo, hi in ranges:
        i = bisect.bisect_left(existing, lo)
        nxt = lo
        while i < len(existing) and existing[i] <= hi:
            out.extend(range(nxt, existing[i]))
            nxt = existing[i] + 1
            i += 1
        out.extend(range(nxt, hi + 1))
    return out


def _in(uid: int, ranges: list[tuple[int, int]]) -> bool:
    i = bisect.bisect_right(ranges, (uid, MAX_UID + 1)) - 1
    return i >= 0 and ranges[i][0] <= uid <= ranges[i][1]


async def _vanished(storage: Storage, view: SelectedView, since: int,
                    ranges: list[tuple[int, int]]) -> list[int]:
    history = await storage.vanished_since(view.mailbox_id, since)
    live = [u for u in view.uids if u not in view.gone]
    if history is None:  # pruned: every UID the client may know that is not here now
        return missing_uids(live, ranges)
    present = set(live)
    return [u for u in history if _in(u, ranges) and u not in present]


async def resync(storage: Storage, view: SelectedView, modseq: int,
                 known_uids: SequenceSet | None) -> Resync:
    """RFC 7162 section 3.2.5: the expunges and changes since ``modseq`` among the client's
    known UIDs (all UIDs below UIDNEXT when it sent none)."""
    ranges = _ranges(known_uids, view.uidnext - 1)
    vanished = await _vanished(storage, view, modseq, ranges)
    changed = [view.entries[u] for u in view.uids
               if u not in view.gone and view.entries[u].modseq > modseq
               and (known_uids is None or _in(u, ranges))]
    return Resync(vanished, changed)


async def vanished_in(storage: Storage, view: SelectedView, since: int,
                      uids: SequenceSet) -> list[int]:
    """RFC 7162 section 3.2.6: UIDs of ``uids`` expunged after ``since`` (``*`` reaches up
    to the highest UID ever given out)."""
    top = max(view.uidnext - 1, view.star(by_uid=True))
    return await _vanished(storage, view, since, _ranges(uids, top))


#: UIDs this process expunged per (storage, mailbox) since it last pruned that mailbox
_UNPRUNED: weakref.WeakKeyDictionary[Storage, dict[int, int]] = weakref.WeakKeyDictionary()
#: most UIDs expunged between two prunes of one mailbox by one process
PRUNE_EVERY_MAX = 256


def prune_every(keep: int) -> int:
    """After how many UIDs expunged here the memory is pruned again: about 1/64 of the
    retention (at most :data:`PRUNE_EVERY_MAX`), every time for a small retention."""
    return max(1, min(keep // 64, PRUNE_EVERY_MAX))


async def prune_history(storage: Storage, mailbox_id: int, keep: int, expunged: int = 1
                        ) -> None:
    """Bound the mailbox's expunged-UID memory after an expunge of ``expunged`` UIDs
    (``limits.expunged_retention``).

    The prune is a write transaction of its own; doing it after every EXPUNGE of one message
    costs a database round and a commit for rows that are nowhere near the bound. So each
    process prunes a mailbox once it has expunged :func:`prune_every` UIDs from it since its
    last prune: the memory then holds at most about ``keep`` plus that slack per process
    (the bound is "about" ``keep`` anyway, :meth:`Storage.prune_expunged`). Keeping more
    history never changes an answer's correctness: a resync from inside the window gets the
    exact VANISHED set, from before it the superset of RFC 7162 section 3.2.5.2."""
    counts = _UNPRUNED.get(storage)
    if counts is None:
        counts = _UNPRUNED[storage] = {}
    pending = counts.get(mailbox_id, 0) + max(1, expunged)
    if pending < prune_every(keep):
        counts[mailbox_id] = pending
        return
    counts.pop(mailbox_id, None)
    if len(counts) > 4096:  # mailboxes that never reached a prune: forget the oldest
        for key in list(counts)[:1024]:
            del counts[key]
    await storage.prune_expunged(mailbox_id, keep)
