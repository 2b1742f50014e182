"""Changing messages: STORE (RFC 3501 6.4.6), COPY (6.4.7, RFC 4315 COPYUID), MOVE
(RFC 6851), EXPUNGE and UID EXPUNGE (6.4.3, RFC 4315 section 2.1), each also as UID command.

- STORE answers ``* n FETCH (FLAGS (...))`` (with UID for UID STORE) for every message of
  the set unless ``.SILENT``; ``\\Recent`` cannot be stored (section 2.3.2) and is ignored.
  A read-only (EXAMINEd) mailbox refuses STORE, EXPUNGE and MOVE with ``NO [READ-ONLY]``.
- COPY/MOVE to a mailbox that does not exist answer ``NO [TRYCREATE]``; success carries
  ``[COPYUID uidvalidity source-uids dest-uids]``. MOVE sends it in an untagged OK before its
  EXPUNGE responses (RFC 6851 section 4.3), then a plain tagged OK. The target may be the
  selected mailbox itself: the messages get new UIDs (EXPUNGE of the old, EXISTS of the new).
  A COPY that would take the user past the quota is ``NO [OVERQUOTA]`` (RFC 9208), checked
  in its transaction.
- EXPUNGE first catches up with other sessions (a \\Deleted set elsewhere counts), removes
  in one storage transaction and reports each removal with the numbering of that moment.
  Without a UID set the catch-up, the removal and the \\Recent claim of new mail the
  catch-up found are one storage call (:meth:`Storage.expunge_with_changes`).

CONDSTORE/QRESYNC (RFC 7162): ``STORE set (UNCHANGEDSINCE n) ...`` enables CONDSTORE and
leaves alone every message whose mod-sequence is above n, answering ``OK [MODIFIED set]``
(message numbers, or UIDs for UID STORE; section 3.1.3). Once CONDSTORE is on, STORE's
FETCH responses carry MODSEQ, and a message a ``.SILENT`` STORE changed is still reported
with its new MODSEQ (without FLAGS); once QRESYNC is on they carry UID too. With QRESYNC on,
EXPUNGE and MOVE report ``* VANISHED uids`` instead of EXPUNGEs (section 3.2.10), and the
tagged OK of EXPUNGE carries ``[HIGHESTMODSEQ n]`` once CONDSTORE is on. Every expunge here
is followed by pruning the mailbox's expunged-UID memory to ``limits.expunged_retention``.
"""

from __future__ import annotations

from mailwing.model import MailEntry
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.responses import Code
from mailwing.server.imap.base import (
    Done,
    Handler,
    Refusal,
    SessionState,
    flags_response,
    list_keywords,
    resolve,
    send_expunges,
    unavailable,
)
from mailwing.server.imap.mailboxes import valid_name
from mailwing.services.imap_condstore import prune_history
from mailwing.services.imap_selected import RECENT, SelectedView, caught_up, refresh
from mailwing.storage.common import clean_flags
from mailwing.storage.errors import NotFound, OverQuota, StorageError
from mailwing.storage.interface import FlagMode
from mailwing.storage.scripts_catchup import Changes

__all__ = ["HANDLERS"]

_MODES: dict[str, FlagMode] = {"+": "add", "-": "remove", "": "replace"}
DELETED = "\\Deleted"


async def _prune(s: SessionState, view: SelectedView, expunged: int) -> None:
    try:
        await prune_history(s.ctx.storage, view.mailbox_id,
                            s.ctx.settings.limits.expunged_retention, expunged)
    except StorageError as exc:  # only the memory bound is late; the expunge stands
        s.conn.log("prune expunged failed", error=str(exc))


def _noop_here(view: SelectedView, pairs: list[tuple[int, int]], flags: list[str],
               mode: str) -> bool:
    """Whether, as far as this session knows, the STORE changes no flag (``+FLAGS (\\Seen)``
    on messages already seen). Only a hint: storage checks it before skipping its write."""
    wanted = clean_flags(flags)
    entries = view.entries
    if mode == "+":
        return all(wanted <= entries[u].flags for _, u in pairs)
    if mode == "-":
        return all(wanted.isdisjoint(entries[u].flags) for _, u in pairs)
    return all(wanted == entries[u].flags for _, u in pairs)


async def _store_quietly(s: SessionState, view: SelectedView, uids: list[int],
                         flags: list[str], cmd: c.Store
                         ) -> tuple[tuple[list[MailEntry], list[int]], Changes, int | None]:
    """A STORE this session expects to change nothing, in a mailbox whose change mark says
    nothing changed since the last catch-up (``+FLAGS (\\Seen)`` on messages already seen):
    the STORE alone, and the catch-up only if it did change something after all. Nothing
    committed by anyone else since that catch-up is missed: a change committed after the
    mark was taken makes the next mark differ. Saves PostgreSQL a statement; a backend
    without marks (SQLite) never comes here."""
    storage = s.ctx.storage
    result = await storage.set_flags(view.mailbox_id, uids, flags, _MODES[cmd.mode],
                                     unchanged_since=cmd.unchanged_since, expect_noop=True)
    if result[0]:
        changes, floor = await storage.catch_up(view.mailbox_id, view.modseq,
                                                claim_from=view.claim_from)
        return result, changes, floor
    return result, (view.modseq, [], []), None


def _writable(view: SelectedView) -> None:
    if view.read_only:
        raise Refusal("NO", texts.READ_ONLY, "READ-ONLY")


async def store(s: SessionState, cmd: c.Store) -> Done:
    view = s.selected()
    _writable(view)
    if cmd.unchanged_since is not None:
        s.enable_condstore()
    pairs = [(q, u) for q, u in resolve(view, cmd.sequence_set, by_uid=cmd.uid)
             if u not in view.gone]
    flags = [f for f in cmd.flags if f != RECENT]
    modified: list[int] = []
    changed_uids: set[int] = set()
    if pairs:
        storage = s.ctx.storage
        try:
            # the catch-up that follows every command, in the STORE's own transaction
            mark = await storage.change_mark(view.mailbox_id, view.change_mark)
            quiet = mark is not None and mark == view.change_mark
            view.change_mark = None  # until the catch-up below is complete
            uids = [u for _, u in pairs]
            noop = _noop_here(view, pairs, flags, cmd.mode)
            if quiet and noop:
                (changed, modified), changes, floor = await _store_quietly(
                    s, view, uids, flags, cmd)
            else:
                (changed, modified), changes, floor = await storage.set_flags_with_changes(
                    view.mailbox_id, uids, flags, _MODES[cmd.mode],
                    since_modseq=view.modseq, claim_from=view.claim_from,
                    unchanged_since=cmd.unchanged_since, expect_noop=noop)
        except StorageError as exc:  # a deleted mailbox too: sync_view's catch-up says BYE
            raise unavailable() from exc
        view.own_flags(changed)
        try:
            await caught_up(storage, view, mark, changes, floor)
            s.caught_up = True
        except StorageError as exc:  # the STORE stands; sync_view catches up again
            s.conn.log("refresh failed", error=str(exc))
        list_keywords(s, view, [e.flags for e in changed])
        changed_uids = {e.uid for e in changed}
    skipped = set(modified)
    for seq, uid in pairs:
        if uid in skipped or (cmd.silent and not (s.condstore and uid in changed_uids)):
            continue
        s.send(flags_response(view, seq, uid, with_uid=cmd.uid or s.qresync,
                              condstore=s.condstore, flags=not cmd.silent))
    word = "UID STORE" if cmd.uid else "STORE"
    if modified:
        numbers = modified if cmd.uid else [q for q, u in pairs if u in skipped]
        return Done("OK", texts.MODIFIED, Code.modified(numbers))
    return Done("OK", texts.COMPLETED.format(word))


async def _transfer(s: SessionState, cmd: c.Copy | c.Move, move: bool) -> Done:
    view = s.selected()
    if move:
        _writable(view)
    uids = [u for _, u in resolve(view, cmd.sequence_set, by_uid=cmd.uid) if u not in view.gone]
    name = valid_name(cmd.mailbox)
    storage = s.ctx.storage
    word = ("UID " if cmd.uid else "") + ("MOVE" if move else "COPY")
    try:
        target = await storage.get_mailbox(s.require_user().id, name)
        if target is None:
            return Done("NO", texts.TRYCREATE, "TRYCREATE")
        if not uids:
            return Done("OK", texts.COMPLETED.format(word))
        pairs = await storage.copy_mail(view.mailbox_id, uids, target.id, move=move,
                                        enforce_quota=True)
    except OverQuota:  # RFC 9208 section 5.2; a MOVE within the user adds nothing
        return Done("NO", texts.OVER_QUOTA, "OVERQUOTA")
    except NotFound:
        return Done("NO", texts.TRYCREATE, "TRYCREATE")
    except StorageError as exc:
        raise unavailable() from exc
    code = (Code.copyuid(target.uidvalidity, [a for a, _ in pairs], [b for _, b in pairs])
            if pairs else None)
    if not move:
        return Done("OK", texts.COMPLETED.format(word), code)
    if code:
        s.send(responses.ok("*", texts.COMPLETED.format(word), code))
    send_expunges(s, view.own_expunge([a for a, _ in pairs]))
    await _prune(s, view, len(pairs))
    return Done("OK", texts.COMPLETED.format(word))


async def copy(s: SessionState, cmd: c.Copy) -> Done:
    return await _transfer(s, cmd, move=False)


async def move(s: SessionState, cmd: c.Move) -> Done:
    return await _transfer(s, cmd, move=True)


async def _expunge_deleted(s: SessionState, view: SelectedView) -> list[int]:
    """EXPUNGE without a UID set: catch up, then remove every message of the numbering that
    carries \\Deleted, in one storage call (:meth:`Storage.expunge_with_changes`) unless
    the storage's change mark says there is nothing to catch up with. Returns the UIDs
    removed; the view has taken in the catch-up, not yet the removal."""
    storage = s.ctx.storage
    deleted = [u for u, e in view.entries.items() if DELETED in e.flags]
    mark = await storage.change_mark(view.mailbox_id, view.change_mark)
    if mark is not None and mark == view.change_mark:  # nothing committed since: no catch-up
        return await storage.expunge(view.mailbox_id, deleted) if deleted else []
    view.change_mark = None  # until the catch-up below is complete
    removed, changes, floor = await storage.expunge_with_changes(
        view.mailbox_id, deleted, highest_known=view.star(by_uid=True),
        since_modseq=view.modseq, claim_from=view.claim_from)
    try:
        await caught_up(storage, view, mark, changes, floor)
    except StorageError as exc:  # only a \\Recent claim failed: the expunge stands
        s.conn.log("refresh failed", error=str(exc))
    return removed


async def expunge(s: SessionState, cmd: c.Expunge) -> Done:
    view = s.selected()
    _writable(view)
    storage = s.ctx.storage
    try:
        if cmd.uid_set is None:
            removed = await _expunge_deleted(s, view)
        else:  # UID EXPUNGE: the set is resolved in the numbering after the catch-up
            await refresh(storage, view)
            wanted = {u for _, u in resolve(view, cmd.uid_set, by_uid=True)}
            doomed = [u for u, e in view.entries.items() if DELETED in e.flags and u in wanted]
            removed = await storage.expunge(view.mailbox_id, doomed) if doomed else []
    except StorageError as exc:
        raise unavailable() from exc
    send_expunges(s, view.own_expunge(removed))
    code = None
    if removed:
        await _prune(s, view, len(removed))
    if s.condstore:
        try:
            await refresh(storage, view)  # what sync_view announces next is below this
        except StorageError as exc:
            raise unavailable() from exc
        code = Code.highestmodseq(view.modseq)
    s.caught_up = True  # caught up above, then only this session's own expunge
    return Done("OK", texts.COMPLETED.format("UID EXPUNGE" if cmd.uid else "EXPUNGE"), code)


HANDLERS: dict[type[c.Command], Handler] = {
    c.Store: store, c.Copy: copy, c.Move: move, c.Expunge: expunge,
}
