"""The values of IMAP STATUS items for one mailbox (RFC 3501 6.3.10, RFC 7162 HIGHESTMODSEQ,
RFC 8438 SIZE, RFC 8474 MAILBOXID).

Why shared: STATUS and LIST-STATUS (RFC 5819, ``LIST ... RETURN (STATUS (...))``) must give
the same answers; both ask here. Counts come from one storage query
(:meth:`Storage.mailbox_counts`); MAILBOXID is derived (:mod:`mailwing.services.objectid`)
and written in its parenthesised wire form.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailwing.model import Mailbox
from mailwing.services.objectid import mailbox_id
from mailwing.storage.interface import Storage

__all__ = ["status_values"]


async def status_values(storage: Storage, box: Mailbox, items: Sequence[str], *,
                        append_limit: int | None = None) -> dict[str, int | str]:
    """``{item: value}`` in the order of ``items`` (unknown items are left out);
    ``append_limit`` answers APPENDLIMIT (RFC 7889 section 4)."""
    counts = await storage.mailbox_counts(box.id)
    values: dict[str, int | str] = {
        "MESSAGES": counts.messages, "RECENT": counts.recent, "UIDNEXT": box.uidnext,
        "UIDVALIDITY": box.uidvalidity, "UNSEEN": counts.unseen,
        "HIGHESTMODSEQ": box.highestmodseq, "SIZE": counts.size,
        "MAILBOXID": f"({mailbox_id(box)})",
    }
    if append_limit is not None:
        values["APPENDLIMIT"] = append_limit
    return {i: values[i] for i in items if i in values}
