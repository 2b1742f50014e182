"""FETCH and UID FETCH (RFC 3501 sections 6.4.5, 6.4.8, 7.4.2).

The handler resolves the set through the session's own numbering, sets ``\\Seen`` in one
storage call for every message a non-PEEK body item touches (read-write mailboxes only) and
reports the new FLAGS inside the same FETCH response, then writes the responses message by
message. Data comes from :class:`mailwing.services.imap_fetch.Fetcher`; large bodies are
streamed here from ``storage.open_content`` with CRLF normalisation, chunk by chunk with
``drain``. UID FETCH always includes UID. A message expunged elsewhere whose content is gone
is left out (the command still completes OK; RFC 3501 section 7.4.1 leaves the choice).

RFC 7162: the MODSEQ item and the CHANGEDSINCE modifier enable CONDSTORE; CHANGEDSINCE keeps
only messages whose mod-sequence is higher and adds MODSEQ to each answer (section 3.1.4.1);
``VANISHED`` (UID FETCH only, QRESYNC enabled, else BAD) first sends ``* VANISHED (EARLIER)``
for the UIDs of the set expunged since then (section 3.2.6). With CONDSTORE on, a FETCH that
sets \\Seen reports MODSEQ beside the new FLAGS (and UID once QRESYNC is on).
"""

from __future__ import annotations

from mailwing.mime.binary import UnknownCte
from mailwing.proto.common.crlf import CrlfNormaliser
from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.proto.imap.fetchitems import FetchItem
from mailwing.proto.imap.responses import LiteralBody
from mailwing.server.imap.base import (
    Done,
    Handler,
    SessionState,
    list_keywords,
    resolve,
    unavailable,
)
from mailwing.services.imap_condstore import vanished_in
from mailwing.services.imap_fetch import Fetcher, StreamSource, needs_body
from mailwing.storage.errors import NotFound, StorageError

__all__ = ["HANDLERS", "stream_literal"]

CHUNK_SIZE = 256 * 1024


async def stream_literal(s: SessionState, body: LiteralBody) -> None:
    """Write exactly ``body.size`` octets of the CRLF form of the content."""
    src: StreamSource = body.source
    await s.flush()
    # Content stored with CRLF everywhere (all SMTP mail) is sent as it is: no rewrite.
    norm = None if src.content.crlf_clean else CrlfNormaliser()
    skip, left = src.start, src.length
    chunks = s.ctx.storage.open_content(src.content.sha256, chunk_size=CHUNK_SIZE)
    try:
        async for raw in chunks:
            data = norm.feed(raw) if norm is not None else raw
            if skip:
                cut = min(skip, len(data))
                data, skip = data[cut:], skip - cut
            if data and left:
                data = data[:left]
                left -= len(data)
                await s.conn.write(data)
            if not left:
                break
        else:
            tail = norm.finish()[:left] if norm is not None and not skip else b""
            left -= len(tail)
            if tail:
                await s.conn.write(tail)
    except StorageError as exc:  # the literal is announced: only padding can keep the stream
        s.conn.log("fetch stream failed", sha256=src.content.sha256, error=str(exc))
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    if left:  # storage gave fewer octets than announced: keep the stream in step
        s.conn.log("fetch size mismatch", sha256=src.content.sha256, missing=left)
        await s.conn.write(b" " * left)


_MODSEQ = FetchItem("MODSEQ")


async def fetch(s: SessionState, cmd: c.Fetch) -> Done:
    view = s.selected()
    if cmd.vanished and not s.qresync:
        return Done("BAD", texts.QRESYNC_NOT_ENABLED)
    items = cmd.items
    if cmd.changed_since is not None or any(i.name == "MODSEQ" for i in items):
        s.enable_condstore()
    if cmd.changed_since is not None and _MODSEQ not in items:
        items = (*items, _MODSEQ)
    pairs = resolve(view, cmd.sequence_set, by_uid=cmd.uid)
    storage = s.ctx.storage
    if cmd.changed_since is not None:
        since = cmd.changed_since
        pairs = [(q, u) for q, u in pairs if view.entries[u].modseq > since]
        if cmd.vanished:
            try:
                gone = await vanished_in(storage, view, since, cmd.sequence_set)
            except StorageError as exc:
                raise unavailable() from exc
            if gone:
                s.send(responses.vanished(gone, earlier=True))
    newly_seen: set[int] = set()
    if not view.read_only and any(i.sets_seen for i in items):
        unseen = [u for _, u in pairs if u not in view.gone
                  and "\\Seen" not in view.entries[u].flags]
        if unseen:
            try:
                changed, _ = await storage.set_flags(view.mailbox_id, unseen, ["\\Seen"], "add")
            except StorageError as exc:
                raise unavailable() from exc
            view.own_flags(changed)
            newly_seen = {e.uid for e in changed}
    if newly_seen or any(i.name == "FLAGS" and i.section is None for i in cmd.items):
        list_keywords(s, view, [view.entries[u].flags for _, u in pairs])
    fetcher = Fetcher(storage, view)
    if any(i.name in ("ENVELOPE", "BODY", "BODYSTRUCTURE") and i.section is None
           for i in items):
        try:
            await fetcher.prefetch(view.entries[u].content for _, u in pairs)
        except StorageError as exc:
            raise unavailable() from exc
    seen_items = items if _MODSEQ in items else (*items, _MODSEQ)
    undecodable = False
    bodies = needs_body(items)
    for batch in fetcher.batches(pairs) if bodies else (pairs,):
        if bodies:
            try:
                await fetcher.preload(uid for _, uid in batch)
            except StorageError as exc:
                raise unavailable() from exc
        for seq, uid in batch:
            extra = s.condstore and uid in newly_seen  # RFC 7162 3.1.4: MODSEQ too
            wanted = seen_items if extra else items
            with_uid = cmd.uid or (extra and s.qresync)
            line = fetcher.line(seq, uid, wanted, with_uid=with_uid, with_flags=uid in newly_seen)
            if line is not None:  # everything answered from memory: one piece, no await
                s.send(line)
                if s.conn.full:
                    await s.flush()
                continue
            try:
                data = await fetcher.items(uid, wanted, with_uid=with_uid,
                                           with_flags=uid in newly_seen)
            except UnknownCte:  # RFC 3516 section 4.3: the others are still sent
                undecodable = True
                continue
            except StorageError as exc:
                if isinstance(exc, NotFound):
                    continue
                raise unavailable() from exc
            if data is None:
                continue
            for segment in responses.fetch_segments(seq, data):
                if isinstance(segment, LiteralBody):
                    await stream_literal(s, segment)
                else:
                    s.send(segment)
            if s.conn.full:
                await s.flush()
    if undecodable:
        return Done("NO", texts.UNKNOWN_CTE, "UNKNOWN-CTE")
    return Done("OK", texts.COMPLETED.format("UID FETCH" if cmd.uid else "FETCH"))


HANDLERS: dict[type[c.Command], Handler] = {c.Fetch: fetch}
