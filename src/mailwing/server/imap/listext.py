"""Extended LIST (RFC 5258) with LIST-STATUS (RFC 5819).

The names and attributes come from :func:`mailwing.services.imap_list.extended_list`. With
``RETURN (STATUS (...))`` each selectable mailbox's LIST line is followed by its
``* STATUS`` line (RFC 5819 section 2: never for ``\\NonExistent`` or ``\\Noselect`` names);
the values are those STATUS gives (:mod:`mailwing.services.imap_status`).
"""

from __future__ import annotations

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.listext import list_line
from mailwing.server.imap.base import Done, SessionState, unavailable
from mailwing.services.imap_list import extended_list
from mailwing.services.imap_mailboxes import DELIMITER
from mailwing.services.imap_status import status_values
from mailwing.storage.errors import NotFound, StorageError

__all__ = ["list_extended"]


async def list_extended(s: SessionState, cmd: c.List) -> Done:
    storage = s.ctx.storage
    user_id = s.require_user().id
    try:
        boxes = await storage.list_mailboxes(user_id)
        names = (await storage.list_subscriptions(user_id)
                 if "SUBSCRIBED" in cmd.select_options else None)
    except StorageError as exc:
        raise unavailable() from exc
    items = extended_list(boxes, cmd.reference, cmd.patterns, cmd.select_options,
                          cmd.return_options, names)
    for item in items:
        s.send(list_line(item.attributes, DELIMITER, item.name, item.childinfo))
        if cmd.status_items and item.mailbox is not None:
            try:
                values = await status_values(storage, item.mailbox, cmd.status_items)
            except NotFound:
                continue  # deleted meanwhile
            except StorageError as exc:
                raise unavailable() from exc
            s.send(responses.status(item.name, values))
    return Done("OK", texts.COMPLETED.format("LIST"))
