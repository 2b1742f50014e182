"""SEARCH and UID SEARCH (RFC 3501 sections 6.4.4, 6.4.8, 7.2.5).

Evaluation is :func:`mailwing.services.imap_search.search`; contents are read only for
header/body keys, through ``storage.read_content`` (CRLF-normalised for :mod:`mailwing.mime`).
CHARSET UTF-8 and US-ASCII are accepted (the parser refuses others with BADCHARSET).
A ``MODSEQ`` key (RFC 7162 section 3.1.5) enables CONDSTORE and makes a non-empty answer end
with ``(MODSEQ n)``, the highest mod-sequence among the messages found.
"""

from __future__ import annotations

from mailwing.model import MailEntry
from mailwing.proto.common.crlf import to_crlf
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.search import And, ModSeq, Not, Or, SearchKey
from mailwing.server.imap.base import Done, Handler, SessionState, unavailable
from mailwing.services.imap_search import search as run_search
from mailwing.storage.errors import NotFound, StorageError

__all__ = ["HANDLERS"]


def uses_modseq(key: SearchKey) -> bool:
    """Whether the criteria contain a MODSEQ key anywhere."""
    match key:
        case ModSeq():
            return True
        case Not(key=inner):
            return uses_modseq(inner)
        case Or(left=left, right=right):
            return uses_modseq(left) or uses_modseq(right)
        case And(keys=keys):
            return any(uses_modseq(k) for k in keys)
    return False


async def search(s: SessionState, cmd: c.Search) -> Done:
    view = s.selected()
    storage = s.ctx.storage

    async def load(entry: MailEntry) -> bytes | None:
        try:
            raw = await storage.read_content(entry.content.sha256)
        except NotFound:
            return None
        return raw if entry.content.crlf_clean else to_crlf(raw)

    try:
        found = await run_search(view, cmd.criteria, load)
    except StorageError as exc:
        raise unavailable() from exc
    highest = None
    if uses_modseq(cmd.criteria):
        s.enable_condstore()
        if found:
            highest = max(view.entries[uid].modseq for _, uid in found)
    s.send(responses.search((uid if cmd.uid else seq for seq, uid in found), highest))
    return Done("OK", texts.COMPLETED.format("UID SEARCH" if cmd.uid else "SEARCH"))


HANDLERS: dict[type[c.Command], Handler] = {c.Search: search}
