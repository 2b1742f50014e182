"""SEARCH criteria (RFC 3501 section 6.4.4; ``search-key`` in section 9) as a small tree.

Why: the session and the MIME views match messages; this module only turns the client's
keys into frozen values they can walk. A list of keys is an implicit AND (:class:`And`); a
parenthesised group is one key. Strings are decoded with the command's CHARSET: only UTF-8
and US-ASCII are accepted (both decode as UTF-8); any other charset is refused with
``NO [BADCHARSET (UTF-8 US-ASCII)]`` (section 6.4.4, 7.1). ``MODSEQ n`` (RFC 7162) is
evaluated against the message's one mod-sequence: the optional entry name and type
(``MODSEQ "/flags/\\seen" all 5``) are checked and kept, since every metadata item of a
message shares that mod-sequence here (RFC 7162 section 3.1.5 allows it).
parsed for later use. Extensions: ``RETURN (MIN MAX ALL COUNT SAVE)`` (RFC 4731, RFC 5182;
an empty list means ALL), ``$`` as a sequence set (RFC 5182), OLDER/YOUNGER (RFC 5032) and
EMAILID/THREADID (RFC 8474).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from mailwing.proto.imap import texts
from mailwing.proto.imap.grammar import Cursor, ParseError
from mailwing.proto.imap.seqset import SequenceSet

__all__ = [
    "CHARSETS", "RETURN_OPTIONS", "All", "And", "Contains", "Date", "Flag", "Header",
    "Keyword", "ModSeq", "New", "Not", "ObjectId", "Old", "Or", "Recent", "SearchKey",
    "Sequence", "Size", "Uid", "Within", "parse_keys", "parse_return_options", "parse_search",
]

CHARSETS = ("UTF-8", "US-ASCII")
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class All:
    pass


@dataclass(frozen=True, slots=True)
class Flag:
    """ANSWERED/DELETED/DRAFT/FLAGGED/SEEN (``present``) and their UN* forms."""

    name: str  # "\\Seen" ...
    present: bool


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    present: bool


@dataclass(frozen=True, slots=True)
class New:
    pass


@dataclass(frozen=True, slots=True)
class Old:
    pass


@dataclass(frozen=True, slots=True)
class Recent:
    pass


@dataclass(frozen=True, slots=True)
class Sequence:
    set: SequenceSet


@dataclass(frozen=True, slots=True)
class Uid:
    set: SequenceSet


@dataclass(frozen=True, slots=True)
class Header:
    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Contains:
    """FROM/TO/CC/BCC/SUBJECT (envelope fields), BODY and TEXT: substring search."""

    where: Literal["FROM", "TO", "CC", "BCC", "SUBJECT", "BODY", "TEXT"]
    value: str


@dataclass(frozen=True, slots=True)
class Date:
    which: Literal["internal", "sent"]
    rel: Literal["before", "on", "since"]
    date: date


@dataclass(frozen=True, slots=True)
class Size:
    rel: Literal["larger", "smaller"]
    n: int


@dataclass(frozen=True, slots=True)
class ModSeq:
    n: int
    entry: str | None = None  # e.g. "/flags/\\seen"
    entry_type: str | None = None  # "priv", "shared" or "all"


@dataclass(frozen=True, slots=True)
class Within:
    """RFC 5032 WITHIN: OLDER n (INTERNALDATE at least n seconds ago) / YOUNGER n."""

    rel: Literal["older", "younger"]
    seconds: int


@dataclass(frozen=True, slots=True)
class ObjectId:
    """RFC 8474 section 6: EMAILID / THREADID search keys."""

    kind: Literal["EMAILID", "THREADID"]
    value: str


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    keys: tuple[SearchKey, ...]


SearchKey = (
    All | Flag | Keyword | New | Old | Recent | Sequence | Uid | Header | Contains | Date
    | Size | ModSeq | Within | ObjectId | Not | Or | And
)

_FLAGS = {"ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN"}
_CONTAINS = {"FROM", "TO", "CC", "BCC", "SUBJECT", "BODY", "TEXT"}
_DATES = {
    "BEFORE": ("internal", "before"), "ON": ("internal", "on"), "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"), "SENTON": ("sent", "on"), "SENTSINCE": ("sent", "since"),
}
_SIMPLE: dict[str, SearchKey] = {
    "ALL": All(), "NEW": New(), "OLD": Old(), "RECENT": Recent(),
}
_SET_CHARS = frozenset(b"0123456789:,*$")
#: RFC 4731 section 3.1 and RFC 5182 section 2.1 result options
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})
_OBJECTID = re.compile(r"[A-Za-z0-9_-]{1,255}")


def _string(cur: Cursor) -> str:
    try:
        return cur.astring().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(texts.NOT_UTF8) from exc


def _key(cur: Cursor, depth: int) -> SearchKey:
    if depth > _MAX_DEPTH:
        raise ParseError(texts.SEARCH_TOO_DEEP)
    c = cur.peek()
    if c == ord("("):
        cur.pos += 1
        keys = _keys(cur, depth + 1)
        cur.expect(b")")
        return keys[0] if len(keys) == 1 else And(keys)
    if c in _SET_CHARS:
        return Sequence(cur.sequence_set())
    word = cur.keyword()
    if word in _SIMPLE:
        return _SIMPLE[word]
    if word in _FLAGS:
        return Flag("\\" + word.capitalize(), True)
    if word.startswith("UN") and word[2:] in _FLAGS:
        return Flag("\\" + word[2:].capitalize(), False)
    if word == "NOT":
        cur.sp()
        return Not(_key(cur, depth + 1))
    if word == "OR":
        cur.sp()
        left = _key(cur, depth + 1)
        cur.sp()
        return Or(left, _key(cur, depth + 1))
    cur.sp()
    if word in ("KEYWORD", "UNKEYWORD"):
        return Keyword(cur.atom("keyword"), word == "KEYWORD")
    if word in _CONTAINS:
        return Contains(word, _string(cur))  # type: ignore[arg-type]
    if word == "HEADER":
        field = _string(cur)
        cur.sp()
        return Header(field, _string(cur))
    if word in _DATES:
        which, rel = _DATES[word]
        return Date(which, rel, cur.date())  # type: ignore[arg-type]
    if word in ("LARGER", "SMALLER"):
        return Size("larger" if word == "LARGER" else "smaller", cur.number())
    if word == "UID":
        return Uid(cur.sequence_set())
    if word == "MODSEQ":
        return _modseq(cur)
    if word in ("OLDER", "YOUNGER"):
        return Within("older" if word == "OLDER" else "younger", cur.number(nonzero=True))
    if word in ("EMAILID", "THREADID"):
        value = cur.atom("object id")
        if not _OBJECTID.fullmatch(value):
            raise ParseError(texts.BAD_SEARCH_KEY)
        return ObjectId(word, value)  # type: ignore[arg-type]
    raise ParseError(texts.BAD_SEARCH_KEY)


def _modseq(cur: Cursor) -> ModSeq:
    """``MODSEQ [entry-name SP entry-type-req SP] mod-sequence-valzer`` (RFC 7162 3.1.5)."""
    entry = entry_type = None
    if cur.peek() == ord('"'):
        try:
            entry = cur.quoted().decode("ascii")
        except UnicodeDecodeError as exc:
            raise ParseError(texts.BAD_SEARCH_KEY) from exc
        if not entry.lower().startswith("/flags/"):
            raise ParseError(texts.BAD_SEARCH_KEY)
        cur.sp()
        entry_type = cur.atom("entry type").lower()
        if entry_type not in ("priv", "shared", "all"):
            raise ParseError(texts.BAD_SEARCH_KEY)
        cur.sp()
    return ModSeq(cur.number64(), entry, entry_type)


def _keys(cur: Cursor, depth: int) -> tuple[SearchKey, ...]:
    keys = [_key(cur, depth)]
    while cur.accept(b" "):
        keys.append(_key(cur, depth))
    return tuple(keys)


def _word_ahead(cur: Cursor, word: bytes) -> bool:
    return bytes(cur.buf[cur.pos:cur.pos + len(word)]).upper() == word


def parse_keys(cur: Cursor) -> SearchKey:
    """``search-key *(SP search-key)`` (an implicit AND of several)."""
    keys = _keys(cur, 0)
    return keys[0] if len(keys) == 1 else And(keys)


def parse_return_options(cur: Cursor) -> tuple[str, ...]:
    """``"(" [opt *(SP opt)] ")"`` of RFC 4731 / 5182; ``()`` means ``(ALL)``."""
    opts = cur.paren_atoms()
    if not RETURN_OPTIONS.issuperset(opts):
        raise ParseError(texts.BAD_SEARCH_KEY)
    return tuple(dict.fromkeys(opts)) or ("ALL",)


def parse_search(cur: Cursor) -> tuple[str | None, tuple[str, ...] | None, SearchKey]:
    """``[RETURN (opts)] [CHARSET x] search-key *(SP search-key)`` after ``SEARCH SP``.
    Returns (charset, return options, key)."""
    returns: tuple[str, ...] | None = None
    charset: str | None = None
    if _word_ahead(cur, b"RETURN ("):
        cur.pos += 7
        returns = parse_return_options(cur)
        cur.sp()
    if _word_ahead(cur, b"CHARSET "):
        cur.pos += 8
        charset = cur.astring().decode("ascii", "replace").upper()
        if charset not in CHARSETS:
            raise ParseError(texts.BAD_CHARSET, code="BADCHARSET (" + " ".join(CHARSETS) + ")")
        cur.sp()
    keys = _keys(cur, 0)
    return charset, returns, keys[0] if len(keys) == 1 else And(keys)
