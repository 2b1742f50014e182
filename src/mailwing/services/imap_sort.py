"""SORT and THREAD over a session's selected view (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO).

Why here: the protocol core knows the orderings (:mod:`mailwing.proto.imap.basesubject`,
:mod:`mailwing.proto.imap.threads`); this module supplies each message's facts.

- SORT uses only what the view already holds: INTERNALDATE, RFC822.SIZE and the header
  fields parsed once at delivery (:class:`~mailwing.model.HeaderFields`), so sorting a
  large mailbox reads no content at all.
- Keys (RFC 5256 section 3): ARRIVAL is INTERNALDATE; DATE the Date: field in UTC, or
  INTERNALDATE when it is missing or unparsable (section 2.2); FROM/TO/CC the local part
  (``addr-mailbox``) of the first address; DISPLAYFROM/DISPLAYTO (RFC 5957 section 3) its
  decoded display name, or ``local@domain`` without one; SUBJECT the base subject. Strings
  compare with i;ascii-casemap; REVERSE applies to the key after it; messages equal on
  every key stay in sequence order (section 3, python's sort is stable).
- THREAD REFERENCES also needs References and In-Reply-To, which are not stored: only the
  header block of each content is read (streamed until the blank line; 16 at a time, since on
  PostgreSQL each is a round trip), and the ids are kept in a bounded process-wide cache
  keyed by content digest (contents never change).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from email.utils import getaddresses
from functools import lru_cache

from mailwing import mime
from mailwing.lru import Lru
from mailwing.model import MailEntry
from mailwing.proto.imap.basesubject import base_subject, casemap
from mailwing.proto.imap.sortparse import SortKey
from mailwing.proto.imap.threads import (
    Node,
    ThreadMessage,
    ordered_subject,
    parse_msgids,
    references,
)
from mailwing.services.imap_selected import SelectedView
from mailwing.storage.errors import NotFound
from mailwing.storage.interface import Storage

__all__ = ["HeaderRefs", "sort_pairs", "thread_pairs"]

_HEAD_CAP = 256 * 1024
_FIELD = {"FROM": "from_", "TO": "to", "CC": "cc", "DISPLAYFROM": "from_",
          "DISPLAYTO": "to"}


@lru_cache(maxsize=65536)  # the stdlib address parser is slow; values repeat a lot
def _first_address(value: str | None) -> tuple[str, str]:
    if not value:
        return "", ""
    try:
        pairs = getaddresses([value])
    except Exception:  # the stdlib parser may raise on garbage; sort such values first
        return "", ""
    for name, addr in pairs:
        if name or addr:
            return name, addr
    return "", ""


def _date(entry: MailEntry) -> float:
    sent = entry.content.fields.date
    when: datetime = sent if sent is not None else entry.internal_date
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return entry.internal_date.timestamp()


def _key_function(key: str) -> Callable[[MailEntry], object]:
    if key == "ARRIVAL":
        return lambda e: e.internal_date.timestamp()
    if key == "DATE":
        return _date
    if key == "SIZE":
        return lambda e: e.content.crlf_size
    if key == "SUBJECT":
        return lambda e: casemap(base_subject(e.content.fields.subject)[0])
    attr = _FIELD[key]
    if key.startswith("DISPLAY"):
        def display(e: MailEntry) -> bytes:
            name, addr = _first_address(getattr(e.content.fields, attr))
            return casemap(name or addr)
        return display

    def mailbox(e: MailEntry) -> bytes:
        _, addr = _first_address(getattr(e.content.fields, attr))
        return casemap(addr.rpartition("@")[0] if "@" in addr else addr)
    return mailbox


def sort_pairs(view: SelectedView, pairs: Sequence[tuple[int, int]],
               keys: Sequence[SortKey]) -> list[tuple[int, int]]:
    """``pairs`` ((seq, uid), ascending) in the order the sort criteria give."""
    out = sorted(pairs)
    for key in reversed(keys):
        func = _key_function(key.key)
        cache = {uid: func(view.entries[uid]) for _, uid in out}
        out.sort(key=lambda p: cache[p[1]], reverse=key.reverse)  # type: ignore[arg-type,return-value]
    return out


class HeaderRefs:
    """References / In-Reply-To ids per content digest (bounded LRU, process-wide)."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._data: Lru[str, tuple[str, ...]] = Lru(max_entries)

    async def prefetch(self, storage: Storage, entries: Iterable[MailEntry],
                       parallel: int = 16) -> None:
        """Read the header blocks not cached yet, ``parallel`` at a time (one query or file
        read each: on PostgreSQL, one after the other costs a round trip per message)."""
        todo = list({e.content.sha256: e for e in entries
                     if e.content.sha256 not in self._data}.values())
        gate = asyncio.Semaphore(parallel)

        async def one(entry: MailEntry) -> None:
            async with gate:
                await self.get(storage, entry)

        await asyncio.gather(*(one(e) for e in todo))

    async def get(self, storage: Storage, entry: MailEntry) -> tuple[str, ...]:
        sha = entry.content.sha256
        found = self._data.get(sha)
        if found is not None:
            return found
        head = await _read_head(storage, sha)
        refs = parse_msgids(" ".join(mime.header_values(head, "references")))
        if not refs:
            refs = parse_msgids(" ".join(mime.header_values(head, "in-reply-to")))[:1]
        value = tuple(refs[-256:])  # a bound: only the nearest ancestors matter
        self._data.put(sha, value)
        return value


REFS = HeaderRefs()


async def _read_head(storage: Storage, sha256: str) -> bytes:
    buf = bytearray()
    chunks = storage.open_content(sha256, chunk_size=16 * 1024)
    try:
        async for chunk in chunks:
            start = max(0, len(buf) - 3)
            buf += chunk
            hits = [i for i in (buf.find(b"\r\n\r\n", start), buf.find(b"\n\n", start))
                    if i >= 0]
            if hits:
                del buf[min(hits) + 2:]
                break
            if len(buf) >= _HEAD_CAP:
                break
    except NotFound:
        return b""
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return bytes(buf)


async def thread_pairs(storage: Storage, view: SelectedView, pairs: Sequence[tuple[int, int]],
                       algorithm: str, *, by_uid: bool, refs: HeaderRefs = REFS
                       ) -> list[Node]:
    """The threads of the matched messages (numbers are UIDs with ``by_uid``)."""
    messages: list[ThreadMessage] = []
    if algorithm == "REFERENCES":
        await refs.prefetch(storage, (view.entries[uid] for _, uid in pairs))
    for seq, uid in sorted(pairs):
        entry = view.entries[uid]
        fields = entry.content.fields
        ids = parse_msgids(fields.message_id)
        found = await refs.get(storage, entry) if algorithm == "REFERENCES" else ()
        messages.append(ThreadMessage(
            number=uid if by_uid else seq, seq=seq, date=_date(entry),
            subject=fields.subject, message_id=ids[0] if ids else None, references=found))
    if algorithm == "ORDEREDSUBJECT":
        return ordered_subject(messages)
    return references(messages)
