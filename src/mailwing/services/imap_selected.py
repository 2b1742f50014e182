"""The selected mailbox as one IMAP session sees it: sequence numbers, \\Recent, pending updates.

Why a separate, socket-free object: RFC 3501 section 2.3.1.2 makes message sequence numbers a
property of the *session*, not of the mailbox. Another session's APPEND, STORE or EXPUNGE
changes the mailbox at once, but this session's numbering may only change when it tells its
client (``* n EXISTS``, ``* n EXPUNGE``), and section 7.4.1 forbids sending EXPUNGE while a
FETCH, STORE or SEARCH (by sequence number) is in progress. So the view keeps:

- ``uids``: the session's own list, ascending; ``uids[i]`` has sequence number ``i + 1``;
- ``entries``: the latest known storage state of each of those messages (flags, size,
  content) -- a FETCH of ``1:* FLAGS RFC822.SIZE`` is answered from memory;
- pending work learnt from :meth:`Storage.mail_changes` but not yet told to the client:
  new entries (``EXISTS``), expunged UIDs (``EXPUNGE``), flag changes (``FETCH``).

An entry expunged elsewhere but not yet announced stays in ``uids`` and ``entries`` (it is
marked in ``gone``), so sequence numbers stay stable; a FETCH of it answers what the session
still has in memory and omits body data whose content has gone (RFC 3501 section 7.4.1 allows
either that or ``NO``; we answer ``OK`` and omit, which clients handle best).

\\Recent (RFC 3501 section 2.3.2): a read-write SELECT calls :meth:`Storage.claim_recent`;
entries at or above the returned floor are recent for this session only. New mail seen later
is claimed the same way (so exactly one session reports it as recent). EXAMINE never claims,
but reports what is recent (the top ``STATUS RECENT`` UIDs, RFC 3501 section 6.3.2: the
same untagged responses as SELECT) so a later SELECT still gets the claim.

Keywords (RFC 3501 section 7.2.6): the view remembers the flags it has listed in ``FLAGS``
(SELECT lists every keyword in use). When an entry this session is about to report carries
a keyword not yet listed (a STORE or APPEND here or elsewhere introduced it), a
:class:`FlagsListed` update comes first, so no FETCH ever carries a flag the client was not
told of. Keywords are never taken back from the list during a session.

Change tracking uses the mailbox's MODSEQ: the view remembers the HIGHESTMODSEQ it has caught
up with and asks only for what changed since. Own changes (STORE, EXPUNGE by this session)
are applied at once and announced by the command itself; when ``mail_changes`` later reports
them again they match what the view holds and produce nothing.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from mailwing.lru import Lru, for_storage
from mailwing.model import Mailbox, MailEntry
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import Storage

__all__ = [
    "RECENT",
    "SYSTEM_FLAGS",
    "Exists",
    "Expunged",
    "FlagsChanged",
    "FlagsListed",
    "Recent",
    "SelectedView",
    "Update",
    "caught_up",
    "open_known_view",
    "open_view",
    "refresh",
    "wire_flags",
]

RECENT = "\\Recent"
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_NOT_KEYWORDS = frozenset((*SYSTEM_FLAGS, RECENT))

#: ``(...)`` of each distinct (stored flags, recent here) pair seen in this process: a
#: mailbox holds few distinct flag sets, and FETCH and STORE answers would otherwise sort
#: and encode the same set again for every message. Cleared when it grows past
#: :data:`_WIRE_FLAGS_MAX` (keywords are client-chosen, so the sets are unbounded).
_WIRE_FLAGS: dict[tuple[frozenset[str], bool], bytes] = {}
_WIRE_FLAGS_MAX = 4096


def wire_flags(flags: frozenset[str], recent: bool = False) -> bytes:
    """``(\\Seen $Work)``: ``flags`` (plus ``\\Recent`` when ``recent``), sorted."""
    key = (flags, recent)
    out = _WIRE_FLAGS.get(key)
    if out is None:
        names = sorted(flags | {RECENT} if recent else flags)
        out = b"(" + " ".join(names).encode("ascii") + b")"
        if len(_WIRE_FLAGS) >= _WIRE_FLAGS_MAX:
            _WIRE_FLAGS.clear()
        _WIRE_FLAGS[key] = out
    return out


@dataclass(frozen=True, slots=True)
class Expunged:
    """``* seq EXPUNGE`` (already applied to the view's numbering); ``uid`` for QRESYNC's
    ``* VANISHED uid`` (RFC 7162 section 3.2.10)."""

    seq: int
    uid: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Exists:
    count: int


@dataclass(frozen=True, slots=True)
class Recent:
    count: int


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """``* seq FETCH (UID uid FLAGS (...))`` for a change made elsewhere."""

    seq: int
    uid: int
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class FlagsListed:
    """``* FLAGS (...)`` and ``* OK [PERMANENTFLAGS (...)]``: the applicable flags grew."""

    flags: tuple[str, ...]
    read_only: bool


Update = Expunged | Exists | Recent | FlagsChanged | FlagsListed


class SelectedView:
    """One session's picture of its selected mailbox (pure bookkeeping, no I/O)."""

    def __init__(self, mailbox: Mailbox, entries: Sequence[MailEntry], *, read_only: bool,
                 modseq: int, recent_floor: int | None = None) -> None:
        self.mailbox = mailbox
        self.read_only = read_only
        self.modseq = modseq
        ordered = sorted(entries, key=lambda e: e.uid)
        self.uids: list[int] = [e.uid for e in ordered]
        self.entries: dict[int, MailEntry] = {e.uid: e for e in ordered}
        self.recent: set[int] = (
            {u for u in self.uids if u >= recent_floor} if recent_floor is not None else set()
        )
        self.gone: set[int] = set()  # expunged in storage, EXPUNGE not yet sent
        self._new: dict[int, MailEntry] = {}  # in storage, EXISTS not yet sent
        self._changed: set[int] = set()  # flags changed elsewhere, FETCH not yet sent
        self._announced_exists = len(self.uids)
        self._announced_recent = len(self.recent)
        self.keywords: set[str] = {f for e in ordered for f in e.flags} - set(SYSTEM_FLAGS)
        #: RFC 5182 ``$``: UIDs saved by SEARCH RETURN (SAVE); a new view starts empty
        self.saved_uids: frozenset[int] = frozenset()
        #: False for an IMAP4rev2 session (RFC 9051 has no \\Recent): nothing is noted as
        #: recent and no RECENT update is reported.
        self.track_recent = True
        #: :meth:`Storage.change_mark` taken before the last complete catch-up with storage
        #: (or before the listing): while the storage's mark stays equal, nothing changed and
        #: :func:`refresh` has nothing to ask
        self.change_mark: Hashable | None = None

    # -- identity and counters -----------------------------------------------------------
    @property
    def mailbox_id(self) -> int:
        return self.mailbox.id

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def uidnext(self) -> int:
        highest = max(self.uids[-1] if self.uids else 0, max(self._new, default=0))
        return max(self.mailbox.uidnext, highest + 1)

    @property
    def claim_from(self) -> int | None:
        """The first UID this view does not know of (listed or pending): a catch-up with an
        entry at or above it brings new mail, which :meth:`note_changes` returns as fresh,
        to be claimed as \\Recent. None for a read-only view, which claims nothing."""
        if self.read_only:
            return None
        return max(self.uids[-1] if self.uids else 0, max(self._new, default=0)) + 1

    def first_unseen(self) -> int | None:
        """Sequence number of the first message without \\Seen (SELECT's ``[UNSEEN n]``)."""
        for seq, uid in enumerate(self.uids, 1):
            if "\\Seen" not in self.entries[uid].flags:
                return seq
        return None

    # -- numbering ------------------------------------------------------------------------
    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def uid_of(self, seq: int) -> int:
        return self.uids[seq - 1]

    def resolve(self, ranges: Iterable[tuple[int, int]], *, by_uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs for a sequence set given as inclusive ranges, ascending, no
        repeats. ``*`` must already be replaced by the caller with :meth:`star` (RFC 3501
        section 9: ``*`` is the largest number in use; a range is unordered, ``4:2``)."""
        picked: set[int] = set()
        for a, b in ranges:
            lo, hi = (a, b) if a <= b else (b, a)
            if by_uid:
                i = bisect.bisect_left(self.uids, lo)
                j = bisect.bisect_right(self.uids, hi)
                picked.update(range(i, j))
            else:
                picked.update(range(max(lo, 1) - 1, min(hi, len(self.uids))))
        return [(i + 1, self.uids[i]) for i in sorted(picked)]

    def star(self, *, by_uid: bool) -> int:
        """The value of ``*``: the highest UID (or sequence number) in use, 0 when empty.

        RFC 3501 section 6.4.8: ``UID n:*`` always includes the highest UID even when it is
        below ``n``; resolving ``n:*`` as the range (highest, n) does exactly that."""
        if by_uid:
            return self.uids[-1] if self.uids else 0
        return len(self.uids)

    @property
    def flag_list(self) -> tuple[str, ...]:
        """The FLAGS this session has been told of: system flags, then keywords."""
        return (*SYSTEM_FLAGS, *sorted(self.keywords))

    def list_keywords(self, flag_sets: Iterable[Iterable[str]]) -> FlagsListed | None:
        """Add the keywords of ``flag_sets`` that the client was not told of yet; the
        :class:`FlagsListed` to send before anything carrying them, or None."""
        known = self.keywords | _NOT_KEYWORDS
        new: set[str] = set()
        for flags in flag_sets:
            if not known.issuperset(flags):  # rarely: one C-level test per set otherwise
                new.update(f for f in flags if f not in known)
        if not new:
            return None
        self.keywords |= new
        return FlagsListed(self.flag_list, self.read_only)

    def flags_of(self, uid: int) -> frozenset[str]:
        """Flags as this session reports them (with \\Recent when it is recent here)."""
        flags = self.entries[uid].flags
        return flags | {RECENT} if uid in self.recent else flags

    def wire_flags_of(self, uid: int) -> bytes:
        """:meth:`flags_of` in its wire form, ``(...)`` (cached per distinct set)."""
        return wire_flags(self.entries[uid].flags, uid in self.recent)

    # -- changes made elsewhere -------------------------------------------------------------
    def note_changes(self, highest: int, changed: Iterable[MailEntry],
                     expunged: Iterable[int]) -> list[int]:
        """Record what :meth:`Storage.mail_changes` reported; return the UIDs of new entries
        (the caller may claim them as \\Recent with :meth:`note_recent`)."""
        self.modseq = max(self.modseq, highest)
        fresh: list[int] = []
        for uid in expunged:
            if uid in self.entries:
                self.gone.add(uid)
            self._new.pop(uid, None)
        for entry in changed:
            uid = entry.uid
            if uid in self.gone:
                continue
            known = self.entries.get(uid)
            if known is not None:
                if known.flags != entry.flags:
                    self._changed.add(uid)
                self.entries[uid] = entry
            elif not self.uids or uid > self.uids[-1]:
                if uid not in self._new:
                    fresh.append(uid)
                self._new[uid] = entry
        return fresh

    def note_recent(self, uids: Iterable[int]) -> None:
        if self.track_recent:
            self.recent.update(uids)

    # -- this session's own changes ---------------------------------------------------------
    def own_flags(self, entries: Iterable[MailEntry]) -> list[FlagsChanged]:
        """Apply the result of this session's STORE; return what to report."""
        out: list[FlagsChanged] = []
        for entry in entries:
            seq = self.seq_of(entry.uid)
            if seq is None:
                continue
            self.entries[entry.uid] = entry
            self._changed.discard(entry.uid)
            out.append(FlagsChanged(seq, entry.uid, self.flags_of(entry.uid)))
        return out

    def own_expunge(self, uids: Iterable[int]) -> list[Expunged]:
        """Apply this session's EXPUNGE (UIDs removed by storage); return ``* n EXPUNGE``s."""
        self.gone.update(u for u in uids if u in self.entries)
        return self._take_expunges()

    # -- telling the client -----------------------------------------------------------------
    def take_updates(self, *, allow_expunge: bool, hold_flags: bool = False) -> list[Update]:
        """The untagged responses due now, in a safe order: EXPUNGEs (if allowed), then
        EXISTS/RECENT for new mail, then FETCH FLAGS for changes made elsewhere.

        ``hold_flags``: while EXPUNGEs must wait, keep the flag changes back too (RFC 7162
        section 3.2: a client told a MODSEQ must not have missed an expunge with a lower
        one, or a resync from that MODSEQ would never report it)."""
        out: list[Update] = []
        hold_flags = hold_flags and not allow_expunge and bool(self.gone)
        if allow_expunge:
            out.extend(self._take_expunges())
        if self._new or self._changed:
            listed = self.list_keywords(
                [e.flags for e in self._new.values()]
                + [self.entries[u].flags for u in self._changed if u in self.entries])
            if listed is not None:
                out.append(listed)
        if self._new:
            for uid in sorted(self._new):
                self.uids.append(uid)
                self.entries[uid] = self._new[uid]
            self._new.clear()
        if len(self.uids) != self._announced_exists:
            self._announced_exists = len(self.uids)
            out.append(Exists(len(self.uids)))
            if self.track_recent:
                recent = self._recent_count()
                self._announced_recent = recent
                out.append(Recent(recent))
        if hold_flags:
            return out
        for uid in sorted(self._changed):
            seq = self.seq_of(uid)
            if seq is not None and uid not in self.gone:
                out.append(FlagsChanged(seq, uid, self.flags_of(uid)))
        self._changed.clear()
        return out

    @property
    def has_pending(self) -> bool:
        return bool(self.gone or self._new or self._changed)

    def _take_expunges(self) -> list[Expunged]:
        if not self.gone:  # nothing to remove: the counters are as announced already
            return []
        out: list[Expunged] = []
        for uid in sorted(self.gone):
            seq = self.seq_of(uid)
            if seq is None:
                continue
            del self.uids[seq - 1]
            del self.entries[uid]
            self.recent.discard(uid)
            out.append(Expunged(seq, uid))
        self.gone.clear()
        self._announced_exists = len(self.uids)
        self._announced_recent = self._recent_count()
        return out

    def _recent_count(self) -> int:
        """Recent messages in the numbering (``entries`` holds exactly the UIDs of ``uids``;
        ``recent`` is the smaller set, and may hold UIDs claimed but expunged unseen)."""
        entries = self.entries
        return sum(1 for u in self.recent if u in entries)


class _ListingCache:
    """The last listing of recently selected mailboxes, per storage object (process-wide).

    A SELECT of a 1,000-message mailbox would otherwise rebuild 1,000 entries from rows every
    time; with this cache it asks only for what changed since the cached HIGHESTMODSEQ
    (:meth:`Storage.mail_changes`: appends, flag changes, expunges), which is usually
    nothing. Bounded to :attr:`SIZE` mailboxes, least recently used first out. Keyed by
    (mailbox id, UIDVALIDITY): SQLite may give a re-created mailbox the id of a deleted one,
    and the deleted one's listing must not come back with it (issue #8, found by
    tests/differential/scripts/delete_selected.txt)."""

    SIZE = 128

    def __init__(self) -> None:
        self._by_storage: weakref.WeakKeyDictionary[
            Storage, Lru[tuple[int, int], tuple[int, dict[int, MailEntry], Mailbox]]
        ] = weakref.WeakKeyDictionary()
        #: (user id, name) -> the mailbox row last listed under that name, per storage
        self._names: weakref.WeakKeyDictionary[
            Storage, dict[tuple[int, str], Mailbox]] = weakref.WeakKeyDictionary()

    def get(self, storage: Storage, mailbox: Mailbox) -> tuple[int, dict[int, MailEntry]] | None:
        lru = self._by_storage.get(storage)
        found = lru.get((mailbox.id, mailbox.uidvalidity)) if lru is not None else None
        if found is None:
            return None
        modseq, entries, _ = found
        return modseq, entries

    def named(self, storage: Storage, user_id: int, name: str) -> Mailbox | None:
        """The row of the mailbox last listed as ``name`` of that user, if its listing is
        kept: only a guess (it may have been renamed, deleted or re-created since)."""
        names = self._names.get(storage)
        return names.get((user_id, name)) if names is not None else None

    def put(self, storage: Storage, mailbox: Mailbox, modseq: int,
            entries: dict[int, MailEntry]) -> None:
        lru = for_storage(self._by_storage, storage, self.SIZE)
        if lru is None:
            return
        names = self._names.setdefault(storage, {})
        names[(mailbox.user_id, mailbox.name)] = mailbox
        for _, _, gone in lru.put((mailbox.id, mailbox.uidvalidity), (modseq, entries, mailbox)):
            if names.get((gone.user_id, gone.name)) is gone:
                del names[(gone.user_id, gone.name)]


_listings = _ListingCache()


async def open_known_view(storage: Storage, user_id: int, name: str, *, read_only: bool
                          ) -> SelectedView | None:
    """SELECT/EXAMINE of the mailbox this process last listed as ``name`` (canonical) of
    that user, without looking it up by name first: :func:`open_view` checks in its read
    that the mailbox still has that name, owner and UIDVALIDITY (PostgreSQL: in its one
    statement, before any claim). None when no listing is kept under that name or it names
    another mailbox (or none) now: the caller then looks it up by name."""
    known = _listings.named(storage, user_id, name)
    if known is None:
        return None
    try:
        return await open_view(storage, known, read_only=read_only, named=True)
    except NotFound:
        return None


async def open_view(storage: Storage, mailbox: Mailbox, *, read_only: bool,
                    named: bool = False) -> SelectedView:
    """SELECT/EXAMINE: counters, \\Recent claim and the listing, so that nothing between is
    lost (a change made in between is reported again by the next :func:`refresh` and matched
    harmlessly). The listing comes from :class:`_ListingCache` plus the changes since it was
    taken when the mailbox was selected before in this process. ``named``: ``mailbox`` is
    a guess (:func:`open_known_view`); NotFound unless it still is that user's mailbox of
    that name, and nothing claimed then."""
    cached = _listings.get(storage, mailbox)
    if named and cached is None:
        raise NotFound(f"no listing kept for mailbox {mailbox.id}")
    # before anything is read (see refresh()); everything is read after it, so news of a
    # change still on its way needs no waiting for (``settled=False``)
    mark = await storage.change_mark(mailbox.id, settled=False)
    peeked = (await storage.mailbox_counts(mailbox.id)).recent if read_only else 0
    if cached is None:
        floor = None if read_only else await storage.claim_recent(mailbox.id)
        fresh = await storage.get_mailbox_by_id(mailbox.id) or mailbox
        modseq = fresh.highestmodseq
        by_uid = {e.uid: e for e in await storage.list_mail(mailbox.id)}
    else:
        since, previous = cached
        # the claim, the row and the changes since: one call (PostgreSQL: one statement)
        found, (modseq, changed, expunged), floor = await storage.open_mailbox(
            mailbox.id, since, claim=not read_only,
            named=(mailbox.user_id, mailbox.name, mailbox.uidvalidity) if named else None)
        by_uid = dict(previous)
        for uid in expunged:
            by_uid.pop(uid, None)
        by_uid.update((e.uid, e) for e in changed)  # SelectedView sorts by UID
        fresh = found or mailbox
    _listings.put(storage, fresh if fresh.uidvalidity == mailbox.uidvalidity else mailbox,
                  modseq, by_uid)
    view = SelectedView(fresh, list(by_uid.values()), read_only=read_only, modseq=modseq,
                        recent_floor=floor)
    if peeked:  # recent UIDs are the highest ones (at or above the mailbox's floor)
        view.note_recent(view.uids[-peeked:])
        view._announced_recent = len(view.recent)
    view.change_mark = mark
    return view


async def refresh(storage: Storage, view: SelectedView) -> None:
    """Catch up with changes made by other sessions, processes or nodes (one query, plus a
    \\Recent claim when new mail arrived and the mailbox is selected read-write). The query
    is skipped when the storage's change mark (:meth:`Storage.change_mark`) equals the one
    taken before the previous complete catch-up: marks are taken *before* reading, so a
    change committed during a catch-up changes the next mark and is fetched then."""
    mark = await storage.change_mark(view.mailbox_id, view.change_mark)
    if mark is not None and mark == view.change_mark:
        return  # no change committed since the last catch-up began (PostgreSQL: no query)
    view.change_mark = None  # until this catch-up is complete
    changes, floor = await storage.catch_up(view.mailbox_id, view.modseq,
                                            claim_from=view.claim_from)
    await caught_up(storage, view, mark, changes, floor)


async def caught_up(storage: Storage, view: SelectedView, mark: Hashable | None,
                    changes: tuple[int, list[MailEntry], list[int]], floor: int | None
                    ) -> None:
    """Take in a catch-up since ``view.modseq`` (:meth:`Storage.catch_up` in
    :func:`refresh`, or together with a STORE: :meth:`Storage.set_flags_with_changes`) and
    the \\Recent floor it claimed for ``view.claim_from`` (claimed here if it brought new
    mail without one); ``mark``: the change mark taken before it was read."""
    fresh = view.note_changes(*changes)
    if fresh and not view.read_only:
        if floor is None:
            floor = await storage.claim_recent(view.mailbox_id)
        view.note_recent(u for u in fresh if u >= floor)
    view.change_mark = mark
