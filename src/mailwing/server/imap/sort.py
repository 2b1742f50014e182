"""SORT, UID SORT, THREAD and UID THREAD (RFC 5256), with ESORT (RFC 5267 section 3).

The messages matching the search criteria (:func:`~mailwing.server.imap.search.matching`)
are ordered by :mod:`mailwing.services.imap_sort`. ``SORT RETURN (...)`` answers with
``* ESEARCH`` in sort order (MIN is the first, MAX the last, ALL keeps the order) and may
SAVE the result for ``$`` like SEARCH (RFC 5182).
"""

from __future__ import annotations

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import texts
from mailwing.proto.imap.threads import format_threads
from mailwing.server.imap.base import Done, Handler, SessionState, unavailable
from mailwing.server.imap.search import answer_esearch, matching
from mailwing.services.imap_sort import sort_pairs, thread_pairs
from mailwing.storage.errors import StorageError

__all__ = ["HANDLERS"]


async def sort(s: SessionState, cmd: c.Sort) -> Done:
    view = s.selected()
    found = sort_pairs(view, await matching(s, cmd.criteria), cmd.keys)
    if cmd.return_options is not None:
        answer_esearch(s, cmd.tag, found, cmd.return_options, uid=cmd.uid, sort_order=True)
    else:
        numbers = " ".join(str(u if cmd.uid else q) for q, u in found)
        s.send(f"* SORT {numbers}".rstrip().encode("ascii") + b"\r\n")
    return Done("OK", texts.COMPLETED.format("UID SORT" if cmd.uid else "SORT"))


async def thread(s: SessionState, cmd: c.Thread) -> Done:
    view = s.selected()
    found = await matching(s, cmd.criteria)
    try:
        roots = await thread_pairs(s.ctx.storage, view, found, cmd.algorithm, by_uid=cmd.uid)
    except StorageError as exc:
        raise unavailable() from exc
    s.send(format_threads(roots))
    return Done("OK", texts.COMPLETED.format("UID THREAD" if cmd.uid else "THREAD"))


HANDLERS: dict[type[c.Command], Handler] = {c.Sort: sort, c.Thread: thread}
