"""What one FETCH data item says about one message (RFC 3501 sections 6.4.5 and 7.4.2).

Why here: the server handler only resolves sequence sets and writes; deciding *what* each
item needs (nothing beyond the entry, the cached MIME views, or the content) is done once:

- FLAGS, UID, INTERNALDATE, RFC822.SIZE (``crlf_size``) and MODSEQ come from the
  :class:`~mailwing.model.MailEntry` the selected view holds: no storage query at all.
- ENVELOPE, BODY and BODYSTRUCTURE are computed once per content and kept in
  :meth:`Storage.set_content_cache` (every session, process and node shares them), and in a
  process-wide LRU (:class:`ViewCache`) so that a ``FETCH 1:* (FLAGS ENVELOPE)`` of a large
  mailbox seen before costs no query per message. Contents are immutable (keyed by SHA-256),
  so the cache never goes stale.
- EMAILID and THREADID (RFC 8474) are derived (:mod:`mailwing.services.objectid`); PREVIEW
  (RFC 8970, :mod:`mailwing.mime.preview`) is computed once per content and cached in the
  content cache under ``preview`` and in a process-wide LRU.
- A full ``BODY[]``/``RFC822`` (or a partial of it) of a message larger than
  :data:`STREAM_OVER` becomes a :class:`~mailwing.proto.imap.responses.LiteralBody`: the
  session streams it from ``storage.open_content`` with CRLF normalisation, so a 25 MB
  message never sits whole in memory. Other sections read the content once per message
  (CRLF-normalised, as :mod:`mailwing.mime` requires) and slice it.

BINARY, BINARY.PEEK and BINARY.SIZE (RFC 3516) decode the part's transfer encoding
(:mod:`mailwing.mime.binary`) from the content read once per message.

A section that does not exist answers the empty string (RFC 3501 leaves it open; most servers
do the same). A message whose content has gone (expunged elsewhere, not yet announced) gets
only the items that need no content (the caller omits it otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailwing import mime
from mailwing.lru import Lru
from mailwing.mime.binary import decode_part
from mailwing.mime.preview import preview as preview_text
from mailwing.model import ContentInfo, MailEntry
from mailwing.proto.common.crlf import to_crlf
from mailwing.proto.imap import wire as pw
from mailwing.proto.imap.fetchitems import FetchItem, Section
from mailwing.proto.imap.responses import LiteralBody
from mailwing.services.imap_selected import SelectedView
from mailwing.services.objectid import email_id
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import Storage

__all__ = ["BATCH_MESSAGES", "BATCH_OCTETS", "STREAM_OVER", "Fetcher", "StreamSource",
           "ViewCache", "needs_body"]

STREAM_OVER = 256 * 1024  # bodies above this many octets are streamed
#: bodies read together for one FETCH (:meth:`Fetcher.batches`): at most this many octets...
BATCH_OCTETS = 1024 * 1024
#: ...and this many messages
BATCH_MESSAGES = 256
#: cache keys; the suffix is bumped whenever the encoding of a view changes (v2: ENVELOPE
#: source routes, the text/* charset default, line counts), so stored views are rebuilt
_VIEW_ITEMS = {"ENVELOPE": "envelope.v2", "BODY": "body.v2",
               "BODYSTRUCTURE": "bodystructure.v2"}
_RFC822 = {"RFC822": Section(), "RFC822.HEADER": Section((), "HEADER"),
           "RFC822.TEXT": Section((), "TEXT")}


@dataclass(frozen=True, slots=True)
class StreamSource:
    """Where a streamed literal comes from: ``length`` octets of the CRLF form of
    ``content`` starting at ``start``."""

    content: ContentInfo
    start: int
    length: int


class ViewCache(Lru[str, dict[str, bytes]]):
    """A bounded, process-wide LRU of encoded ENVELOPE/BODY/BODYSTRUCTURE per content."""

    __slots__ = ()

    def __init__(self, max_entries: int = 20_000) -> None:
        super().__init__(max_entries)


VIEWS = ViewCache()
PREVIEWS = ViewCache()  # {"preview": UTF-8 text} per content


def needs_body(items: Iterable[FetchItem]) -> bool:
    """Whether answering ``items`` reads the message itself (a section, RFC822*, BINARY),
    not only the entry and the cached views."""
    return any(i.section is not None or i.binary or i.name in _RFC822 for i in items)


class Fetcher:
    """Builds ``(name, value)`` pairs for ``responses.fetch_segments``, one message at a
    time; keeps the last content read so several sections of one message cost one read,
    and the small bodies of a batch of messages read together (:meth:`preload`)."""

    def __init__(self, storage: Storage, view: SelectedView, cache: ViewCache = VIEWS) -> None:
        self.storage = storage
        self.view = view
        self.cache = cache
        self._last: tuple[str, bytes, mime.MessagePart | None] | None = None
        self._bodies: dict[str, bytes] = {}  # raw bodies of the current batch, by SHA-256
        #: the last item list and the names of its items without a section
        self._plain: tuple[tuple[FetchItem, ...], frozenset[str]] = ((), frozenset())
        self._labels: dict[int, str] = {}  # response names (``BODY[]``), by id() of the item

    def batches(self, pairs: list[tuple[int, int]]) -> Iterable[list[tuple[int, int]]]:
        """``pairs`` cut into runs of at most :data:`BATCH_MESSAGES` messages and about
        :data:`BATCH_OCTETS` octets (what one :meth:`preload` may hold in memory)."""
        entries = self.view.entries
        run: list[tuple[int, int]] = []
        octets = 0
        for pair in pairs:
            size = entries[pair[1]].content.crlf_size
            if run and (len(run) >= BATCH_MESSAGES or octets + size > BATCH_OCTETS):
                yield run
                run, octets = [], 0
            run.append(pair)
            octets += size
        if run:
            yield run

    async def preload(self, uids: Iterable[int]) -> None:
        """Read the bodies of these messages that are not streamed (at most
        :data:`STREAM_OVER` octets) in one storage call: ``FETCH 1:* BODY[]`` of 50 small
        messages then costs one batched read instead of 50 (file opens, thread hops). What
        the previous batch held is dropped. A content that is gone is left out here and
        reported by :meth:`raw` as before."""
        wanted = {}
        for uid in uids:
            content = self.view.entries[uid].content
            if content.crlf_size <= STREAM_OVER:
                wanted[content.sha256] = content
        self._bodies = {}
        if len(wanted) < 2:
            return  # nothing gained over raw()
        found = await self.storage.read_contents(list(wanted.values()))
        self._bodies = {sha256: raw if wanted[sha256].crlf_clean else to_crlf(raw)
                        for sha256, raw in found.items()}

    async def prefetch(self, contents: Iterable[ContentInfo]) -> None:
        """Warm the LRU for many contents in one query when the storage offers a batch
        lookup (``get_content_caches(sha256s) -> {sha256: values}``, not yet part of the
        Storage protocol); otherwise each cold content costs one lookup in :meth:`views`."""
        batch = getattr(self.storage, "get_content_caches", None)
        if batch is None:
            return
        missing = list(dict.fromkeys(c.sha256 for c in contents
                                     if self.cache.get(c.sha256) is None))
        if not missing:
            return
        found: dict[str, dict[str, bytes]] = await batch(missing)
        for sha256, values in found.items():
            if all(k in values for k in _VIEW_ITEMS.values()):
                self.cache.put(sha256, values)

    async def raw(self, content: ContentInfo) -> bytes:
        """The CRLF form of a content (NotFound if the content is gone)."""
        if self._last is not None and self._last[0] == content.sha256:
            return self._last[1]
        raw = self._bodies.get(content.sha256)
        if raw is None:
            raw = await self.storage.read_content(content.sha256)
            if not content.crlf_clean:
                raw = to_crlf(raw)
        self._last = (content.sha256, raw, None)
        return raw

    async def message(self, content: ContentInfo) -> tuple[bytes, mime.MessagePart]:
        """The CRLF form of a content and its MIME tree (NotFound if the content is gone)."""
        last = self._last
        if last is not None and last[0] == content.sha256 and last[2] is not None:
            return last[1], last[2]
        raw = await self.raw(content)
        msg = mime.parse(raw)
        self._last = (content.sha256, raw, msg)
        return raw, msg

    async def views(self, content: ContentInfo) -> dict[str, bytes]:
        cached = self.cache.get(content.sha256)
        if cached is not None:
            return cached
        stored = await self.storage.get_content_cache(content.sha256)
        if not all(k in stored for k in _VIEW_ITEMS.values()):
            _, msg = await self.message(content)
            stored = {
                _VIEW_ITEMS["ENVELOPE"]: pw.encode_sexp(mime.envelope(msg)),
                _VIEW_ITEMS["BODY"]: pw.encode_sexp(mime.bodystructure(msg, extended=False)),
                _VIEW_ITEMS["BODYSTRUCTURE"]: pw.encode_sexp(
                    mime.bodystructure(msg, extended=True)),
            }
            await self.storage.set_content_cache(content.sha256, stored)
        self.cache.put(content.sha256, stored)
        return stored

    async def preview(self, content: ContentInfo) -> str:
        """RFC 8970 preview text, computed once per content (storage content cache and a
        process-wide LRU, like the views)."""
        cached = PREVIEWS.get(content.sha256)
        if cached is None:
            cached = await self.storage.get_content_cache(content.sha256)
            if "preview" not in cached:
                raw, msg = await self.message(content)
                cached = {"preview": preview_text(raw, msg).encode("utf-8")}
                await self.storage.set_content_cache(content.sha256, cached)
            cached = {"preview": cached["preview"]}
            PREVIEWS.put(content.sha256, cached)
        return cached["preview"].decode("utf-8", "replace")

    async def items(self, uid: int, items: tuple[FetchItem, ...], *, with_uid: bool,
                    with_flags: bool) -> list[tuple[str, bytes | LiteralBody]] | None:
        """The FETCH data of one message, or None when its content is gone.

        Items answered from memory (the entry, a cached view, a preloaded body) take the
        synchronous :meth:`_quick`; only the others cost a coroutine (:meth:`_item`)."""
        entry = self.view.entries[uid]
        out: list[tuple[str, bytes | LiteralBody]] = []
        if self._plain[0] is not items:  # by identity: hashing the items costs more
            self._plain = (items, frozenset(i.name for i in items if i.section is None))
        names = self._plain[1]
        if with_uid and "UID" not in names:
            out.append(("UID", b"%d" % uid))
        try:
            for item in items:
                quick = self._quick(entry, item)
                out.append(quick if quick is not None else await self._item(entry, item))
        except NotFound:
            return None
        if with_flags and "FLAGS" not in names:
            out.append(("FLAGS", self.view.wire_flags_of(uid)))
        return out

    def line(self, seq: int, uid: int, items: tuple[FetchItem, ...], *, with_uid: bool,
             with_flags: bool) -> bytes | None:
        """:meth:`items` as the whole ``* seq FETCH (...)`` line when every item is answered
        from memory (:meth:`_quick`), else None (then :meth:`items` must be used). Why: the
        FETCH of flags, sizes or cached views is most FETCHes, and a coroutine, a list of
        pairs and a segment list per message were most of their cost."""
        entry = self.view.entries[uid]
        if self._plain[0] is not items:
            self._plain = (items, frozenset(i.name for i in items if i.section is None))
        names = self._plain[1]
        out: list[bytes] = [b"UID %d" % uid] if with_uid and "UID" not in names else []
        quick = self._quick
        for item in items:
            answer = quick(entry, item)
            if answer is None:
                return None
            out.append(answer[0].encode("ascii") + b" " + answer[1])
        if with_flags and "FLAGS" not in names:
            out.append(b"FLAGS " + self.view.wire_flags_of(uid))
        return b"* %d FETCH (%b)\r\n" % (seq, b" ".join(out))

    def _quick(self, entry: MailEntry, item: FetchItem) -> tuple[str, bytes] | None:
        """The answer of an item that needs no storage call now, else None."""
        name = item.name
        section = item.section
        if section is None:
            if name == "FLAGS":
                return name, self.view.wire_flags_of(entry.uid)
            if name == "UID":
                return name, b"%d" % entry.uid
            if name == "RFC822.SIZE":
                return name, b"%d" % entry.content.crlf_size
            if name == "MODSEQ":
                return name, b"(%d)" % entry.modseq
            if name == "INTERNALDATE":
                return name, pw.quoted(pw.format_datetime(entry.internal_date))
            if name in _VIEW_ITEMS:
                cached = self.cache.get(entry.content.sha256)
                if cached is not None:
                    return name, cached[_VIEW_ITEMS[name]]
            return None
        if (item.binary or item.partial is not None or section.part or section.text is not None
                or section.fields):
            return None
        content = entry.content  # the whole message, BODY[] or BODY.PEEK[]
        raw = self._bodies.get(content.sha256) if content.crlf_size <= STREAM_OVER else None
        if raw is None:
            return None
        self._last = (content.sha256, raw, None)
        label = self._labels.get(id(item))  # the items outlive this Fetcher (one FETCH)
        if label is None:
            label = self._labels[id(item)] = item.response_name
        return label, pw.literal(raw) if raw else b'""'

    async def _item(self, entry: MailEntry, item: FetchItem) -> tuple[str, bytes | LiteralBody]:
        """The items :meth:`_quick` cannot answer from memory (UID, FLAGS, RFC822.SIZE,
        MODSEQ and INTERNALDATE it always answers, so they never reach here)."""
        name = item.name
        if item.binary:
            return item.response_name, await self._binary(entry, item)
        if item.section is not None:
            return item.response_name, await self._section(entry, item.section, item.partial)
        if name in _VIEW_ITEMS:
            return name, (await self.views(entry.content))[_VIEW_ITEMS[name]]
        if name == "EMAILID":
            return name, b"(" + email_id(entry.content).encode("ascii") + b")"
        if name == "THREADID":
            return name, b"NIL"  # RFC 8474 section 5.2: no persistent thread ids
        if name == "PREVIEW":
            return name, pw.quoted(await self.preview(entry.content))
        return name, await self._section(entry, _RFC822[name], None)

    async def _binary(self, entry: MailEntry, item: FetchItem) -> bytes:
        """RFC 3516: the decoded part (``literal8`` when it holds NUL), or its decoded size.
        A part that does not exist is empty (size 0), like a missing BODY section. Raises
        :class:`~mailwing.mime.binary.UnknownCte` (the command answers NO [UNKNOWN-CTE])."""
        raw, msg = await self.message(entry.content)
        assert item.section is not None
        data = decode_part(raw, msg, item.section.part) or b""
        if item.name == "BINARY.SIZE":
            return b"%d" % len(data)
        if item.partial is not None:
            data = mime.partial(data, item.partial[0], item.partial[1])
        if b"\x00" in data:
            return b"~{%d}\r\n" % len(data) + data
        return pw.literal(data) if data else b'""'

    async def _section(self, entry: MailEntry, section: Section,
                       partial: tuple[int, int] | None) -> bytes | LiteralBody:
        content = entry.content
        whole = section.part == () and section.text is None
        if whole and content.crlf_size > STREAM_OVER:
            start, length = partial if partial is not None else (0, content.crlf_size)
            size = max(0, min(length, content.crlf_size - start))
            return LiteralBody(size, StreamSource(content, start, size))
        if whole and not section.fields:  # BODY[] is the whole message (mime.parse spans
            data: bytes | None = await self.raw(content)  # 0..len): no MIME tree needed
        else:
            raw, msg = await self.message(content)
            data = mime.section(raw, msg, section.part, section.text, section.fields)
        if data is None:
            data = b""
        if partial is not None:
            data = mime.partial(data, partial[0], partial[1])
        return pw.literal(data) if data else b'""'
