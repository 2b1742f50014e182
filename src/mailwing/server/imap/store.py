"""Changing messages: STORE (RFC 3501 6.4.6), COPY (6.4.7, RFC 4315 COPYUID), MOVE
(RFC 6851), EXPUNGE and UID EXPUNGE (6.4.3, RFC 4315 section 2.1), each also as UID command.

- STORE answers ``* n FETCH (FLAGS (...))`` (with UID for UID STORE) for every message of
  the set unless ``.SILENT``; ``\\Recent`` cannot be stored (section 2.3.2) and is ignored.
  A read-only (EXAMINEd) mailbox refuses STORE, EXPUNGE and MOVE with ``NO [READ-ONLY]``.
- COPY/MOVE to a mailbox that does not exist answer ``NO [TRYCREATE]``; success carries
  ``[COPYUID uidvalidity source-uids dest-uids]``. MOVE sends it in an untagged OK before its
  EXPUNGE responses (RFC 6851 section 4.3), then a plain tagged OK. The target may be the
  selected mailbox itself: the messages get new UIDs (EXPUNGE of the old, EXISTS of the new).
- EXPUNGE first catches up with other sessions (a \\Deleted set elsewhere counts), removes
  in one storage transaction and reports each removal with the numbering of that moment.
"""

from __future__ import annotations

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap import wire as pw
from mailwing.proto.imap.responses import Code
from mailwing.server.imap.base import (
    Done,
    Handler,
    Refusal,
    SessionState,
    list_keywords,
    resolve,
    unavailable,
)
from mailwing.server.imap.mailboxes import valid_name
from mailwing.services.imap_selected import RECENT, SelectedView, refresh
from mailwing.storage.errors import NotFound, StorageError
from mailwing.storage.interface import FlagMode

__all__ = ["HANDLERS"]

_MODES: dict[str, FlagMode] = {"+": "add", "-": "remove", "": "replace"}


def _writable(view: SelectedView) -> None:
    if view.read_only:
        raise Refusal("NO", texts.READ_ONLY, "READ-ONLY")


def _fetch_flags(view: SelectedView, seq: int, uid: int, with_uid: bool) -> bytes:
    items = [("UID", b"%d" % uid)] if with_uid else []
    items.append(("FLAGS", pw.flag_list(sorted(view.flags_of(uid)))))
    return responses.fetch(seq, items)


async def store(s: SessionState, cmd: c.Store) -> Done:
    view = s.selected()
    _writable(view)
    pairs = [(q, u) for q, u in resolve(view, cmd.sequence_set, by_uid=cmd.uid)
             if u not in view.gone]
    flags = [f for f in cmd.flags if f != RECENT]
    if pairs:
        try:
            changed, _ = await s.ctx.storage.set_flags(
                view.mailbox_id, [u for _, u in pairs], flags, _MODES[cmd.mode])
        except StorageError as exc:
            raise unavailable() from exc
        view.own_flags(changed)
        list_keywords(s, view, [e.flags for e in changed])
    if not cmd.silent:
        for seq, uid in pairs:
            s.send(_fetch_flags(view, seq, uid, cmd.uid))
    return Done("OK", texts.COMPLETED.format("UID STORE" if cmd.uid else "STORE"))


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
        pairs = await storage.copy_mail(view.mailbox_id, uids, target.id, move=move)
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
    for gone in view.own_expunge([a for a, _ in pairs]):
        s.send(responses.expunge(gone.seq))
    return Done("OK", texts.COMPLETED.format(word))


async def copy(s: SessionState, cmd: c.Copy) -> Done:
    return await _transfer(s, cmd, move=False)


async def move(s: SessionState, cmd: c.Move) -> Done:
    return await _transfer(s, cmd, move=True)


async def expunge(s: SessionState, cmd: c.Expunge) -> Done:
    view = s.selected()
    _writable(view)
    storage = s.ctx.storage
    try:
        await refresh(storage, view)
        wanted = None
        if cmd.uid_set is not None:
            wanted = {u for _, u in resolve(view, cmd.uid_set, by_uid=True)}
        doomed = [u for u, e in view.entries.items()
                  if "\\Deleted" in e.flags and (wanted is None or u in wanted)]
        removed = await storage.expunge(view.mailbox_id, doomed) if doomed else []
    except StorageError as exc:
        raise unavailable() from exc
    for gone in view.own_expunge(removed):
        s.send(responses.expunge(gone.seq))
    return Done("OK", texts.COMPLETED.format("UID EXPUNGE" if cmd.uid else "EXPUNGE"))


HANDLERS: dict[type[c.Command], Handler] = {
    c.Store: store, c.Copy: copy, c.Move: move, c.Expunge: expunge,
}
