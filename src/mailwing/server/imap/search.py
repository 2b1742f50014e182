"""SEARCH and UID SEARCH (RFC 3501 sections 6.4.4, 6.4.8, 7.2.5).

Evaluation is :func:`mailwing.services.imap_search.search`; contents are read only for
header/body keys, through ``storage.read_content`` (CRLF-normalised for :mod:`mailwing.mime`).
CHARSET UTF-8 and US-ASCII are accepted (the parser refuses others with BADCHARSET). After
ENABLE IMAP4rev2 the result is an ESEARCH response (``proto.imap.rev2.esearch``).
"""

from __future__ import annotations

from mailwing.model import MailEntry
from mailwing.proto.common.crlf import to_crlf
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.rev2 import esearch, rev2
from mailwing.server.imap.base import Done, SessionState, unavailable
from mailwing.services.imap_search import search as run_search
from mailwing.storage.errors import NotFound, StorageError

__all__ = ["HANDLERS"]


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
    numbers = [uid if cmd.uid else seq for seq, uid in found]
    if rev2(s.enabled):  # RFC 9051 section 6.4.4: the ESEARCH form
        s.send(esearch(cmd.tag, numbers, uid=cmd.uid, options=cmd.return_options))
    else:
        s.send(responses.search(numbers))
    return Done("OK", texts.COMPLETED.format("UID SEARCH" if cmd.uid else "SEARCH"))


HANDLERS = {c.Search: search}
