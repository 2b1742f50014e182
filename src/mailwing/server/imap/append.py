"""APPEND in full: RFC 3501 section 6.3.11 with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469),
literal8 data (RFC 3516 section 4.4), ``UTF8 (...)`` data (RFC 6855 section 4), APPENDLIMIT
(RFC 7889) and QUOTA enforcement (RFC 9208 section 5.1).

Order of checks, each failure leaving nothing stored (all or none, RFC 3502 section 3):

1. the target must exist: ``NO [TRYCREATE]``;
2. each message is built (CATENATE URLs resolved by :mod:`mailwing.services.imap_catenate`:
   ``NO [BADURL url]``) and must be within ``limits.max_message_size``: ``NO [TOOBIG]``;
3. the contents are written, then linked in **one** storage transaction
   (:meth:`Storage.append_many`) that also checks the quota: ``NO [OVERQUOTA]``.

Success answers ``OK [APPENDUID uidvalidity uid-set]`` (RFC 4315; a set for MULTIAPPEND,
RFC 3502 section 6.3.11 of RFC 4315's update). Other sessions learn of the new messages
through storage change tracking. ``\\Recent`` in the flag list is ignored (it cannot be set).
"""

from __future__ import annotations

from mailwing.model import ContentInfo, Mailbox, MailEntry
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import texts
from mailwing.proto.imap.responses import Code
from mailwing.proto.imap.rev2 import utf8
from mailwing.server.imap.base import Done, Handler, SessionState, unavailable
from mailwing.server.imap.mailboxes import valid_name
from mailwing.services.imap_catenate import CatenateError, catenate
from mailwing.services.imap_selected import RECENT, caught_up
from mailwing.storage.errors import NotFound, OverQuota, StorageError
from mailwing.storage.interface import Delivery

__all__ = ["HANDLERS"]

_INBOX = "INBOX"


async def append(s: SessionState, cmd: c.Append) -> Done:
    if any(m.utf8 for m in cmd.messages) and not utf8(s.enabled):
        return Done("BAD", texts.UTF8_NOT_ENABLED)  # RFC 6855 section 4
    limit = s.ctx.settings.limits.max_message_size
    name = valid_name(cmd.mailbox)
    storage, user = s.ctx.storage, s.require_user()
    view = s.view
    # INBOX keeps its id while the user exists (DELETE refuses it, RENAME moves its mail out
    # and leaves it): the selected INBOX needs no look-up (a storage call per APPEND). Gone
    # all the same (deleted by an administrator), the append says NotFound and the look-up
    # is made then, with the answer it always gave.
    inbox = view is not None and name == _INBOX and view.mailbox.name == _INBOX
    try:
        box = view.mailbox if view is not None and inbox else await storage.get_mailbox(
            user.id, name)
        if box is None:
            return Done("NO", texts.TRYCREATE, "TRYCREATE")
        bodies: list[bytes] = []
        for message in cmd.messages:
            data = message.message
            if message.parts is not None:
                data = await catenate(storage, user, s.view, message.parts, limit)
            if len(data) > limit:
                return Done("NO", texts.MESSAGE_TOO_BIG, "TOOBIG")
            bodies.append(data)
        contents: list[ContentInfo] = [await storage.store_content(b) for b in bodies]
        items = [(content, Delivery(box.id, frozenset(f for f in m.flags if f != RECENT),
                                    m.internal_date))
                 for content, m in zip(contents, cmd.messages, strict=True)]
        if view is None or view.mailbox_id != box.id:
            entries = await storage.append_many(items, enforce_quota=True)
        else:  # into the selected mailbox: the catch-up after the command comes along
            mark = await storage.change_mark(view.mailbox_id, view.change_mark)
            view.change_mark = None  # until the catch-up below is complete
            try:
                entries, changes, floor = await storage.append_many_with_changes(
                    items, mailbox_id=box.id, since_modseq=view.modseq,
                    claim_from=view.claim_from, enforce_quota=True)
            except NotFound:
                if not inbox:
                    raise
                found = await storage.get_mailbox(user.id, name)
                if found is None or found.id == box.id:
                    raise
                box = found
                entries = await storage.append_many(
                    [(content, d._replace(mailbox_id=box.id)) for content, d in items],
                    enforce_quota=True)
                return _appended(s, box, entries, bodies)
            try:
                await caught_up(storage, view, mark, changes, floor)
                s.caught_up = True
            except StorageError as exc:  # the APPEND stands; sync_view catches up again
                s.conn.log("refresh failed", error=str(exc))
    except CatenateError as exc:
        text = texts.CATENATE_TOO_BIG if exc.code == "TOOBIG" else texts.BAD_URL
        return Done("NO", text, exc.code)
    except OverQuota:
        return Done("NO", texts.OVER_QUOTA, "OVERQUOTA")
    except NotFound:
        return Done("NO", texts.TRYCREATE, "TRYCREATE")
    except StorageError as exc:
        raise unavailable() from exc
    return _appended(s, box, entries, bodies)


def _appended(s: SessionState, box: Mailbox, entries: list[MailEntry], bodies: list[bytes]
              ) -> Done:
    uids = [e.uid for e in entries]
    s.conn.log("append", mailbox_id=box.id, uids=len(uids), size=sum(map(len, bodies)))
    return Done("OK", texts.COMPLETED.format("APPEND"), Code.appenduid(box.uidvalidity, uids))


HANDLERS: dict[type[c.Command], Handler] = {c.Append: append}
