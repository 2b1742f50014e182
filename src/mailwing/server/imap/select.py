"""Selecting and leaving mailboxes and STATUS: SELECT/EXAMINE (RFC 3501 6.3.1-2),
STATUS (6.3.10), CHECK (6.4.1), CLOSE (6.4.2), UNSELECT (RFC 3691). APPEND is in
``append.py``.

SELECT answers FLAGS, EXISTS, RECENT, ``[UNSEEN n]`` (the first unseen sequence number, only
when there is one), ``[PERMANENTFLAGS]`` (with ``\\*``: any keyword may be stored;
none for EXAMINE), ``[UIDVALIDITY]``, ``[UIDNEXT]``, then ``[READ-WRITE]``/``[READ-ONLY]``.
A SELECT that fails leaves the session in the authenticated state (section 6.3.1). EXAMINE
does not claim \\Recent.

APPEND: a message over ``limits.max_message_size`` answers ``NO [TOOBIG]``; a missing target
``NO [TRYCREATE]``; success ``OK [APPENDUID uidvalidity uid]``. Other sessions learn of the
new message through storage change tracking (their next NOOP/IDLE).

CLOSE removes \\Deleted messages silently when the mailbox is read-write (no EXPUNGE
responses, section 6.4.2); UNSELECT never removes anything.

CONDSTORE/QRESYNC (RFC 7162): every SELECT/EXAMINE answers ``[HIGHESTMODSEQ n]`` (mod-sequences
are always stored, so never ``[NOMODSEQ]``); ``(CONDSTORE)`` and the STATUS item HIGHESTMODSEQ
enable CONDSTORE (section 3.1). ``(QRESYNC (...))`` needs ``ENABLE QRESYNC`` first (BAD
otherwise, section 3.2.5) and, when the UIDVALIDITY matches, is answered after the usual data
with ``* VANISHED (EARLIER)`` and the FETCHes of what changed
(:func:`mailwing.services.imap_condstore.resync`). A SELECT/EXAMINE that replaces a selected
mailbox first says ``* OK [CLOSED]`` (section 3.2.11; RFC 9051 makes it general, and clients
ignore codes they do not know, RFC 3501 section 7.1), even when it then fails.
"""

from __future__ import annotations

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.responses import Code
from mailwing.proto.imap.rev2 import rev2
from mailwing.server.imap.base import Done, Handler, SessionState, flags_response, unavailable
from mailwing.server.imap.mailboxes import find_mailbox
from mailwing.services import imap_mailboxes as mb
from mailwing.services.imap_condstore import prune_history, resync
from mailwing.services.imap_selected import (
    SYSTEM_FLAGS,
    SelectedView,
    open_known_view,
    open_view,
    refresh,
)
from mailwing.services.imap_status import status_values
from mailwing.services.objectid import mailbox_id
from mailwing.storage.errors import StorageError

__all__ = ["HANDLERS", "SYSTEM_FLAGS"]



async def select(s: SessionState, cmd: c.Select) -> Done:
    was_selected, s.view = s.view is not None, None  # a failed SELECT leaves none selected
    imap4rev2 = rev2(s.enabled)
    if was_selected:  # RFC 7162 3.2.11, RFC 9051 7.1: the old mailbox's responses end here
        s.send(responses.ok("*", texts.CLOSED, Code.CLOSED))
    if cmd.qresync is not None and not s.qresync:
        return Done("BAD", texts.QRESYNC_NOT_ENABLED)
    if cmd.qresync is not None and not cmd.qresync.seq_match_paired:
        return Done("BAD", texts.BAD_SEQ_MATCH)
    if cmd.condstore:
        s.enable_condstore()
    view = await _open(s, cmd)
    box = view.mailbox
    if imap4rev2:  # no \Recent in IMAP4rev2 (RFC 9051 Appendix E)
        view.track_recent = False
        view.recent.clear()
    s.view = view
    s.caught_up = True  # open_view read it all after taking its mark: no catch-up yet
    flags = view.flag_list  # every keyword in use (RFC 3501 section 7.2.6)
    s.send(responses.flags(flags))
    s.send(responses.exists(view.exists))
    if imap4rev2:  # RFC 9051 section 6.3.2: LIST with the name, no RECENT, no UNSEEN
        s.send(responses.list_response(
            (box.special_use,) if box.special_use else (), "/", box.name))
    else:
        s.send(responses.recent(len(view.recent)))
        unseen = view.first_unseen()
        if unseen is not None:
            s.send(responses.ok("*", texts.UNSEEN_FIRST, Code.unseen(unseen)))
    permanent = () if cmd.readonly else (*flags, "\\*")
    s.send(responses.ok("*", texts.PERMANENTFLAGS, Code.permanentflags(permanent)))
    s.send(responses.ok("*", texts.UIDVALIDITY, Code.uidvalidity(view.mailbox.uidvalidity)))
    s.send(responses.ok("*", texts.UIDNEXT, Code.uidnext(view.uidnext)))
    s.send(responses.ok("*", texts.MAILBOXID, Code.mailboxid(mailbox_id(view.mailbox))))
    s.send(responses.ok("*", texts.HIGHESTMODSEQ, Code.highestmodseq(view.modseq)))
    if cmd.qresync is not None:
        await _resync(s, view, cmd.qresync)
    mode = "READ-ONLY" if cmd.readonly else "READ-WRITE"
    return Done("OK", texts.COMPLETED.format("EXAMINE" if cmd.readonly else "SELECT"), mode)


async def _open(s: SessionState, cmd: c.Select) -> SelectedView:
    """The view of the mailbox ``cmd`` names: when this process keeps the listing of the
    mailbox last listed under that name, that one, checked to still have the name in the
    read that opens it (:func:`open_known_view`: on PostgreSQL one statement instead of the
    lookup by name and that read); otherwise looked up by name first."""
    storage = s.ctx.storage
    try:
        canonical: str | None = mb.canonical(cmd.mailbox)
    except mb.InvalidName:
        canonical = None  # find_mailbox says NO
    try:
        if canonical is not None:
            view = await open_known_view(storage, s.require_user().id, canonical,
                                         read_only=cmd.readonly)
            if view is not None:
                return view
        box = await find_mailbox(s, cmd.mailbox)
        return await open_view(storage, box, read_only=cmd.readonly)
    except StorageError as exc:
        raise unavailable() from exc


async def _resync(s: SessionState, view: SelectedView, params: c.QresyncParams) -> None:
    """RFC 7162 section 3.2.5: VANISHED (EARLIER), then FETCH (UID FLAGS MODSEQ) of changes."""
    if params.uidvalidity != view.mailbox.uidvalidity:
        return  # the client's cache is void: a plain SELECT (section 3.2.5.1)
    try:
        found = await resync(s.ctx.storage, view, params.modseq, params.known_uids)
    except StorageError as exc:
        raise unavailable() from exc
    if found.vanished:
        s.send(responses.vanished(found.vanished, earlier=True))
    for entry in found.changed:
        seq = view.seq_of(entry.uid)
        if seq is not None:
            s.send(flags_response(view, seq, entry.uid, with_uid=True, condstore=True))


async def status(s: SessionState, cmd: c.Status) -> Done:
    if "HIGHESTMODSEQ" in cmd.items:
        s.enable_condstore()
    box = await find_mailbox(s, cmd.mailbox)
    try:
        values = await status_values(s.ctx.storage, box, cmd.items,
                                     append_limit=s.ctx.settings.limits.max_message_size)
    except StorageError as exc:
        raise unavailable() from exc
    s.send(responses.status(box.name, values))
    return Done("OK", texts.COMPLETED.format("STATUS"))


async def check(s: SessionState, cmd: c.Check) -> Done:
    return Done("OK", texts.COMPLETED.format("CHECK"))


async def close(s: SessionState, cmd: c.Close) -> Done:
    view = s.selected()
    s.view = None
    if not view.read_only:
        try:
            await refresh(s.ctx.storage, view)
            doomed = [u for u, e in view.entries.items() if "\\Deleted" in e.flags]
            if doomed:
                removed = await s.ctx.storage.expunge(view.mailbox_id, doomed)
                await prune_history(s.ctx.storage, view.mailbox_id,
                                    s.ctx.settings.limits.expunged_retention, len(removed))
        except StorageError as exc:
            raise unavailable() from exc
    return Done("OK", texts.COMPLETED.format("CLOSE"))


async def unselect(s: SessionState, cmd: c.Unselect) -> Done:
    s.view = None
    return Done("OK", texts.COMPLETED.format("UNSELECT"))


HANDLERS: dict[type[c.Command], Handler] = {
    c.Select: select, c.Status: status, c.Check: check, c.Close: close,
    c.Unselect: unselect,
}
