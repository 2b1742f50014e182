"""IMAP SEARCH evaluation (RFC 3501 section 6.4.4) over a session's selected view.

Why two passes: most searches (flags, UIDs, sizes, internal dates) are answered from the
entries the view already holds in memory, without touching storage. Each message is first
evaluated with three-valued logic (True / False / unknown): only when the answer depends on
a header or body key is its content read, parsed once and evaluated again for real.

Matching rules:

- strings match as case-insensitive substrings (``str.casefold``), after RFC 2047 decoding
  of header fields and transfer/charset decoding of text bodies (done by :mod:`mailwing.mime`);
- FROM/TO/CC/SUBJECT use the fields parsed at delivery (:class:`~mailwing.model.HeaderFields`)
  when storage has them, and the content otherwise; BCC, HEADER, BODY and TEXT read the
  content; ``HEADER name ""`` matches every message that has the field;
- BEFORE/ON/SINCE compare the date of INTERNALDATE, SENT* the calendar date of the Date:
  field in its own time zone (RFC 3501 says "disregarding time and timezone"; storage keeps
  the instant, not the zone, so the stored value only decides when it is more than a day
  away, else the header is read); a message without a usable Date: falls back to its
  INTERNALDATE, as Dovecot does;
- OLDER/YOUNGER (RFC 5032) compare INTERNALDATE with the time of the search; EMAILID and
  THREADID (RFC 8474) compare with :mod:`mailwing.services.objectid`; ``$`` (RFC 5182) is
  the view's saved UIDs;
- NEW is RECENT UNSEEN, OLD is NOT RECENT (section 6.4.4); sequence sets resolve ``*`` with
  the view's current numbering.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

from mailwing import mime
from mailwing.model import MailEntry
from mailwing.proto.imap import search as k
from mailwing.services.imap_selected import SelectedView
from mailwing.services.objectid import email_id

__all__ = ["ContentLoader", "needs_content", "search"]

ContentLoader = Callable[[MailEntry], Awaitable[bytes | None]]

_FIELD_ATTR = {"FROM": "from_", "TO": "to", "CC": "cc", "SUBJECT": "subject"}


def needs_content(key: k.SearchKey) -> bool:
    """True when some message may need its content read to decide ``key``."""
    match key:
        case k.Header() | k.Contains() | k.Date(which="sent"):
            return True
        case k.Not(key=inner):
            return needs_content(inner)
        case k.Or(left=a, right=b):
            return needs_content(a) or needs_content(b)
        case k.And(keys=keys):
            return any(needs_content(x) for x in keys)
    return False


def _cmp(rel: str, day: date, wanted: date) -> bool:
    if rel == "before":
        return day < wanted
    if rel == "on":
        return day == wanted
    return day >= wanted


def _around(rel: str, utc_day: date, wanted: date) -> bool | None:
    """Decide a SENT* key from the UTC date of the Date: field when every zone (at most a
    day away) gives the same answer; None when the header's own date must be read."""
    low, high = utc_day - timedelta(days=1), utc_day + timedelta(days=1)
    if rel == "before":
        return True if high < wanted else False if low >= wanted else None
    if rel == "on":
        return False if wanted < low or wanted > high else None
    return True if low >= wanted else False if high < wanted else None


def _contains(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle.casefold() in haystack.casefold()


class _Probe:
    """Evaluates keys for one message; ``msg`` is the parsed content once loaded."""

    def __init__(self, view: SelectedView, seq: int, uid: int) -> None:
        self.view = view
        self.seq = seq
        self.uid = uid
        self.entry = view.entries[uid]
        self.raw: bytes | None = None
        self.msg: mime.MessagePart | None = None
        self.now = datetime.now(UTC)

    def flags(self) -> frozenset[str]:
        return self.view.flags_of(self.uid)

    def eval(self, key: k.SearchKey) -> bool | None:
        match key:
            case k.All():
                return True
            case k.Flag(name=name, present=present) | k.Keyword(name=name, present=present):
                return (name in self.flags()) == present
            case k.New():
                flags = self.flags()
                return "\\Recent" in flags and "\\Seen" not in flags
            case k.Old():
                return "\\Recent" not in self.flags()
            case k.Recent():
                return "\\Recent" in self.flags()
            case k.Sequence(set=s) | k.Uid(set=s) if s.saved:  # RFC 5182 "$"
                return self.uid in self.view.saved_uids
            case k.Sequence(set=s):
                return s.contains(self.seq, self.view.star(by_uid=False))
            case k.Uid(set=s):
                return s.contains(self.uid, self.view.star(by_uid=True))
            case k.Size(rel=rel, n=n):
                size = self.entry.content.crlf_size
                return size > n if rel == "larger" else size < n
            case k.Date(which="internal", rel=rel, date=d):
                return _cmp(rel, self.entry.internal_date.date(), d)
            case k.ModSeq(n=n):
                return self.entry.modseq >= n
            case k.Within(rel=rel, seconds=seconds):  # RFC 5032
                cutoff = self.now - timedelta(seconds=seconds)
                when = self.entry.internal_date
                return when <= cutoff if rel == "older" else when > cutoff
            case k.ObjectId(kind="EMAILID", value=value):  # RFC 8474 section 6
                return email_id(self.entry.content) == value
            case k.ObjectId():
                return False  # THREADID: no persistent thread ids (FETCH says NIL)
            case k.Not(key=inner):
                r = self.eval(inner)
                return None if r is None else not r
            case k.Or(left=a, right=b):
                ra = self.eval(a)
                if ra:
                    return True
                rb = self.eval(b)
                if rb:
                    return True
                return None if ra is None or rb is None else False
            case k.And(keys=keys):
                unknown = False
                for sub in keys:
                    r = self.eval(sub)
                    if r is False:
                        return False
                    unknown = unknown or r is None
                return None if unknown else True
        return self._content_key(key)

    def _content_key(self, key: k.SearchKey) -> bool | None:
        match key:
            case k.Contains(where=where, value=value) if where in _FIELD_ATTR:
                stored = getattr(self.entry.content.fields, _FIELD_ATTR[where])
                if stored is not None and len(stored) < 2000:
                    return _contains(stored, value)
                if self.msg is None:
                    return None
                return self._header(where, value)
            case k.Date(which="sent", rel=rel, date=d):
                sent = self.entry.content.fields.date
                if sent is not None:
                    quick = _around(rel, sent.astimezone(UTC).date(), d)
                    if quick is not None:
                        return quick
                if self.msg is None:
                    return None
                day = mime.sent_date(self.msg) or self.entry.internal_date.date()
                return _cmp(rel, day, d)
        if self.msg is None or self.raw is None:
            return None
        match key:
            case k.Contains(where="BCC", value=value):
                return self._header("BCC", value)
            case k.Header(field=name, value=value):
                return self._header(name, value)
            case k.Contains(where="BODY", value=value):
                return _contains(mime.body_text(self.raw, self.msg), value)
            case k.Contains(where="TEXT", value=value):
                return mime.matches_text(self.raw, self.msg, value)
        return False

    def _header(self, name: str, value: str) -> bool:
        assert self.msg is not None
        return mime.matches_header(self.msg, name, value)


async def search(view: SelectedView, key: k.SearchKey, load: ContentLoader
                 ) -> list[tuple[int, int]]:
    """(seq, uid) of every message of the view matching ``key``, ascending."""
    out: list[tuple[int, int]] = []
    for seq, uid in enumerate(list(view.uids), 1):
        if uid not in view.entries:
            continue
        probe = _Probe(view, seq, uid)
        verdict = probe.eval(key)
        if verdict is None:
            raw = await load(probe.entry)
            if raw is None:
                continue  # content gone (expunged elsewhere): it cannot match
            probe.raw = raw
            probe.msg = mime.parse(raw)
            verdict = probe.eval(key)
        if verdict:
            out.append((seq, uid))
    return out
