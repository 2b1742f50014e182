"""SEARCH and UID SEARCH (RFC 3501 sections 6.4.4, 6.4.8, 7.2.5), with ESEARCH (RFC 4731)
and SEARCHRES (RFC 5182).

Evaluation is :func:`mailwing.services.imap_search.search`; contents are read only for
header/body keys, through ``storage.read_content`` (CRLF-normalised for :mod:`mailwing.mime`).
CHARSET UTF-8 and US-ASCII are accepted (the parser refuses others with BADCHARSET).
A ``MODSEQ`` key (RFC 7162 section 3.1.5) enables CONDSTORE and makes a non-empty answer end
with ``(MODSEQ n)``, the highest mod-sequence among the messages found.

``RETURN (...)`` answers ``* ESEARCH`` instead of ``* SEARCH``; ``SAVE`` keeps the result
(as UIDs, so later expunges simply drop out of it) in the view for ``$``; a SAVE search that
fails on storage empties it (RFC 5182 section 2.1). After ENABLE IMAP4rev2 a SEARCH
without RETURN answers the ESEARCH form too (RFC 9051 section 6.4.4).
"""

from __future__ import annotations

from mailwing.model import MailEntry
from mailwing.proto.common.crlf import to_crlf
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.esearch import esearch, saved_result
from mailwing.proto.imap.rev2 import rev2
from mailwing.proto.imap.search import And, ModSeq, Not, Or, SearchKey
from mailwing.server.imap.base import Done, Handler, SessionState, unavailable
from mailwing.services.imap_search import search as run_search
from mailwing.storage.errors import NotFound, StorageError

__all__ = ["HANDLERS", "answer_esearch", "matching"]


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


async def matching(s: SessionState, criteria: SearchKey) -> list[tuple[int, int]]:
    """(seq, uid) of the selected view's messages matching ``criteria``."""
    view = s.selected()
    storage = s.ctx.storage

    async def load(entry: MailEntry) -> bytes | None:
        try:
            raw = await storage.read_content(entry.content.sha256)
        except NotFound:
            return None
        return raw if entry.content.crlf_clean else to_crlf(raw)

    try:
        return await run_search(view, criteria, load)
    except StorageError as exc:
        raise unavailable() from exc


def answer_esearch(s: SessionState, tag: str, found: list[tuple[int, int]],
                   options: tuple[str, ...], *, uid: bool, sort_order: bool = False,
                   modseq: int | None = None) -> None:
    """Queue the ESEARCH line and apply SAVE (RFC 4731 section 3.1, RFC 5182 section 2.4);
    ``modseq`` adds the ``MODSEQ`` item of a search with a MODSEQ key (RFC 7162 3.1.5)."""
    view = s.selected()
    numbers = [u if uid else q for q, u in found]
    if "SAVE" in options:
        by_uid = dict(found) if not uid else None
        kept = saved_result(numbers, options, sort_order=sort_order)
        view.saved_uids = frozenset(kept if by_uid is None else (by_uid[n] for n in kept))
    line = esearch(tag, numbers, options, uid=uid, sort_order=sort_order)
    if line is not None:
        if modseq is not None:
            line = line[:-2] + b" MODSEQ %d\r\n" % modseq
        s.send(line)


async def search(s: SessionState, cmd: c.Search) -> Done:
    view = s.selected()
    try:
        found = await matching(s, cmd.criteria)
    except BaseException:
        if cmd.return_options and "SAVE" in cmd.return_options:
            view.saved_uids = frozenset()
        raise
    highest = None
    if uses_modseq(cmd.criteria):
        s.enable_condstore()
        if found:
            highest = max(view.entries[uid].modseq for _, uid in found)
    if cmd.return_options is not None or rev2(s.enabled):  # RFC 9051 6.4.4: RETURN (ALL)
        answer_esearch(s, cmd.tag, found, cmd.return_options or ("ALL",), uid=cmd.uid,
                       modseq=highest)
    else:
        s.send(responses.search((uid if cmd.uid else seq for seq, uid in found), highest))
    return Done("OK", texts.COMPLETED.format("UID SEARCH" if cmd.uid else "SEARCH"))


HANDLERS: dict[type[c.Command], Handler] = {c.Search: search}
