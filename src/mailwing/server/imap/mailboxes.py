"""Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB
(RFC 3501 sections 6.3.3-6.3.9, RFC 6154 special-use, RFC 3348 CHILDREN).

Choices:

- CREATE makes missing parents first (section 6.3.3); ``CREATE x (USE (\\Sent))`` sets the
  special-use attribute (RFC 6154 section 3). An existing name answers ``NO [ALREADYEXISTS]``.
- DELETE refuses INBOX. A mailbox with children is deleted all the same (RFC 3501 section
  6.3.4): its row and mail go, and the name stays as the implied ``\\Noselect`` parent of its
  children (LIST shows it so); a later CREATE makes a new mailbox with a new UIDVALIDITY.
  DELETE of such a ``\\Noselect`` name, which still has children, is ``NO [INUSE]``.
- RENAME keeps UIDVALIDITY and moves children along (storage does both); RENAME INBOX moves
  its mail to the new name and leaves INBOX empty (section 6.3.5). Missing parents of the new
  name are created.
- LIST ``"" ""`` answers the delimiter (section 6.3.8); patterns are matched by
  :mod:`mailwing.services.imap_mailboxes`.
"""

from __future__ import annotations

import contextlib

from mailwing.model import Mailbox
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.responses import Code
from mailwing.server.imap.base import Done, Handler, Refusal, SessionState, unavailable
from mailwing.server.imap.listext import list_extended
from mailwing.services import imap_mailboxes as mb
from mailwing.services.objectid import mailbox_id
from mailwing.storage.errors import AlreadyExists, NotFound, StorageError

__all__ = ["HANDLERS", "find_mailbox", "valid_name"]

_SPECIAL_USE = {u.lower(): u for u in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk",
                                        "\\Sent", "\\Trash")}


def valid_name(name: str) -> str:
    try:
        return mb.canonical(name)
    except mb.InvalidName as exc:
        raise Refusal("NO", texts.BAD_MAILBOX_NAME, "CANNOT") from exc


async def find_mailbox(s: SessionState, name: str) -> Mailbox:
    """The user's mailbox called ``name`` (after the name rules), or ``NO [NONEXISTENT]``:
    a name no mailbox can have (odd characters, invalid modified UTF-7) names no mailbox,
    which is a NO, never a BAD (RFC 3501 sections 6.3.1, 6.3.2, 6.3.10)."""
    try:
        canonical = mb.canonical(name)
    except mb.InvalidName:
        raise Refusal("NO", texts.NO_SUCH_MAILBOX, "NONEXISTENT") from None
    try:
        box = await s.ctx.storage.get_mailbox(s.require_user().id, canonical)
    except StorageError as exc:
        raise unavailable() from exc
    if box is None:
        raise Refusal("NO", texts.NO_SUCH_MAILBOX, "NONEXISTENT")
    return box


async def _ensure_parents(s: SessionState, name: str) -> None:
    storage, user = s.ctx.storage, s.require_user()
    for parent in mb.parents_of(name):
        if await storage.get_mailbox(user.id, parent) is None:
            with contextlib.suppress(AlreadyExists):  # made meanwhile by another session
                await storage.create_mailbox(user.id, parent)


async def create(s: SessionState, cmd: c.Create) -> Done:
    name = valid_name(cmd.mailbox)
    use = None
    if cmd.special_use:
        use = _SPECIAL_USE.get(cmd.special_use[0].lower())
        if len(cmd.special_use) > 1 or use is None:
            return Done("NO", texts.BAD_CREATE_PARAM, "USEATTR")
    user = s.require_user()
    try:
        if await s.ctx.storage.get_mailbox(user.id, name) is not None:
            return Done("NO", texts.MAILBOX_EXISTS, "ALREADYEXISTS")
        await _ensure_parents(s, name)
        box = await s.ctx.storage.create_mailbox(user.id, name, use)
    except AlreadyExists:
        return Done("NO", texts.MAILBOX_EXISTS, "ALREADYEXISTS")
    except StorageError as exc:
        raise unavailable() from exc
    return Done("OK", texts.COMPLETED.format("CREATE"), Code.mailboxid(mailbox_id(box)))


async def delete(s: SessionState, cmd: c.Delete) -> Done:
    name = valid_name(cmd.mailbox)
    if name == "INBOX":
        return Done("NO", texts.CANNOT_DELETE_INBOX, "CANNOT")
    user = s.require_user()
    try:
        boxes = await s.ctx.storage.list_mailboxes(user.id)
        if not any(m.name == name for m in boxes):
            if any(m.name.startswith(name + mb.DELIMITER) for m in boxes):
                # a \Noselect parent with inferiors (RFC 3501 section 6.3.4)
                return Done("NO", texts.HAS_CHILDREN, "INUSE")
            return Done("NO", texts.NO_SUCH_MAILBOX, "NONEXISTENT")
        await s.ctx.storage.delete_mailbox(user.id, name)
    except NotFound:
        return Done("NO", texts.NO_SUCH_MAILBOX, "NONEXISTENT")
    except StorageError as exc:
        raise unavailable() from exc
    if s.view is not None and s.view.mailbox.name == name:
        s.view = None  # deleting the selected mailbox leaves the selected state
    return Done("OK", texts.COMPLETED.format("DELETE"))


async def rename(s: SessionState, cmd: c.Rename) -> Done:
    old, new = valid_name(cmd.old), valid_name(cmd.new)
    user = s.require_user()
    if new == "INBOX" or new.startswith(old + mb.DELIMITER):
        return Done("NO", texts.CANNOT, "CANNOT")
    try:
        if await s.ctx.storage.get_mailbox(user.id, old) is None:
            return Done("NO", texts.NO_SUCH_MAILBOX, "NONEXISTENT")
        if await s.ctx.storage.get_mailbox(user.id, new) is not None:
            return Done("NO", texts.MAILBOX_EXISTS, "ALREADYEXISTS")
        await _ensure_parents(s, new)
        await s.ctx.storage.rename_mailbox(user.id, old, new)
    except NotFound:
        return Done("NO", texts.NO_SUCH_MAILBOX, "NONEXISTENT")
    except AlreadyExists:
        return Done("NO", texts.MAILBOX_EXISTS, "ALREADYEXISTS")
    except StorageError as exc:
        raise unavailable() from exc
    return Done("OK", texts.COMPLETED.format("RENAME"))


async def _subscribe(s: SessionState, name: str, on: bool, command: str) -> Done:
    """Names, not mailboxes: SUBSCRIBE of a name without a mailbox and UNSUBSCRIBE of one
    whose mailbox is gone both succeed (RFC 3501 6.3.6/6.3.7)."""
    name = valid_name(name)
    try:
        await s.ctx.storage.set_subscribed(s.require_user().id, name, on)
    except StorageError as exc:
        raise unavailable() from exc
    return Done("OK", texts.COMPLETED.format(command))


async def subscribe(s: SessionState, cmd: c.Subscribe) -> Done:
    return await _subscribe(s, cmd.mailbox, True, "SUBSCRIBE")


async def unsubscribe(s: SessionState, cmd: c.Unsubscribe) -> Done:
    return await _subscribe(s, cmd.mailbox, False, "UNSUBSCRIBE")


def _line(kind: str, item: mb.ListItem) -> bytes:
    return responses.list_response(item.attributes, mb.DELIMITER, item.name, kind)


async def list_(s: SessionState, cmd: c.List) -> Done:
    if cmd.extended:
        return await list_extended(s, cmd)  # RFC 5258 / 5819
    try:
        boxes = await s.ctx.storage.list_mailboxes(s.require_user().id)
    except StorageError as exc:
        raise unavailable() from exc
    special_only = "SPECIAL-USE" in cmd.select_options
    subscribed_only = "SUBSCRIBED" in cmd.select_options
    seen: set[str] = set()
    for pattern in cmd.patterns:
        if pattern == "" and not cmd.extended:
            s.send(responses.list_response(("\\Noselect",), mb.DELIMITER, "", "LIST"))
            continue
        for item in mb.list_items(boxes, cmd.reference, pattern):
            if item.name in seen:
                continue
            seen.add(item.name)
            box = next((m for m in boxes if m.name == item.name), None)
            if special_only and (box is None or not box.special_use):
                continue
            if subscribed_only and (box is None or not box.subscribed):
                continue
            wants_sub = subscribed_only or "SUBSCRIBED" in cmd.return_options
            if wants_sub and box is not None and box.subscribed:
                item = mb.ListItem(item.name, (*item.attributes, "\\Subscribed"))
            s.send(_line("LIST", item))
    return Done("OK", texts.COMPLETED.format("LIST"))


async def lsub(s: SessionState, cmd: c.Lsub) -> Done:
    user_id = s.require_user().id
    try:
        boxes = await s.ctx.storage.list_mailboxes(user_id)
        names = await s.ctx.storage.list_subscriptions(user_id)
    except StorageError as exc:
        raise unavailable() from exc
    if cmd.pattern == "":
        s.send(responses.list_response(("\\Noselect",), mb.DELIMITER, "", "LSUB"))
    else:
        for item in mb.lsub_items(boxes, cmd.reference, cmd.pattern, names):
            s.send(_line("LSUB", item))
    return Done("OK", texts.COMPLETED.format("LSUB"))


HANDLERS: dict[type[c.Command], Handler] = {
    c.Create: create, c.Delete: delete, c.Rename: rename, c.Subscribe: subscribe,
    c.Unsubscribe: unsubscribe, c.List: list_, c.Lsub: lsub,
}
