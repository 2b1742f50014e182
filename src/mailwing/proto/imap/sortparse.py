"""Grammar of SORT and THREAD (RFC 5256 section 5, RFC 5267 section 3.2, RFC 5957).

Why apart from ``parser.py``: the search-criteria tail is shared with SEARCH
(:mod:`~mailwing.proto.imap.search`), but the sort criteria, the mandatory charset and the
thread algorithm are specific to these two commands, and keeping them here keeps the
command table small.

- ``SORT [RETURN (opts)] (sort-criteria) charset search-key *(SP search-key)``; the RETURN
  options are those of ESEARCH (RFC 5267 ESORT, RFC 4731, RFC 5182 SAVE).
- sort keys: ARRIVAL CC DATE FROM SIZE SUBJECT TO (RFC 5256), DISPLAYFROM DISPLAYTO
  (RFC 5957), each optionally preceded by REVERSE.
- ``THREAD algorithm charset search-key...`` with ORDEREDSUBJECT or REFERENCES.
- The charset must be UTF-8 or US-ASCII, else ``NO [BADCHARSET ...]`` as for SEARCH.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwing.proto.imap import texts
from mailwing.proto.imap.grammar import Cursor, ParseError
from mailwing.proto.imap.search import CHARSETS, SearchKey, parse_keys, parse_return_options

__all__ = ["SORT_KEYS", "THREAD_ALGORITHMS", "SortKey", "parse_sort", "parse_thread"]

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                       "DISPLAYFROM", "DISPLAYTO"})
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")
_MAX_SORT_KEYS = 16


@dataclass(frozen=True, slots=True)
class SortKey:
    key: str  # one of SORT_KEYS
    reverse: bool = False


def _charset(cur: Cursor) -> str:
    charset = cur.astring().decode("ascii", "replace").upper()
    if charset not in CHARSETS:
        raise ParseError(texts.BAD_CHARSET, code="BADCHARSET (" + " ".join(CHARSETS) + ")")
    return charset


def _criteria(cur: Cursor) -> tuple[str, SearchKey]:
    charset = _charset(cur)
    cur.sp()
    return charset, parse_keys(cur)


def _sort_keys(cur: Cursor) -> tuple[SortKey, ...]:
    words = cur.paren_atoms()
    out: list[SortKey] = []
    reverse = False
    for word in words:
        if word == "REVERSE" and not reverse:
            reverse = True
            continue
        if word not in SORT_KEYS:
            raise ParseError(texts.BAD_SORT_KEY)
        out.append(SortKey(word, reverse))
        reverse = False
    if reverse or not out or len(out) > _MAX_SORT_KEYS:
        raise ParseError(texts.BAD_SORT_KEY)
    return tuple(out)


def parse_sort(cur: Cursor) -> tuple[tuple[str, ...] | None, tuple[SortKey, ...], str,
                                      SearchKey]:
    """After ``SORT SP``: (return options or None, sort keys, charset, criteria)."""
    returns = None
    if bytes(cur.buf[cur.pos:cur.pos + 8]).upper() == b"RETURN (":
        cur.pos += 7
        returns = parse_return_options(cur)
        cur.sp()
    keys = _sort_keys(cur)
    cur.sp()
    charset, criteria = _criteria(cur)
    return returns, keys, charset, criteria


def parse_thread(cur: Cursor) -> tuple[str, str, SearchKey]:
    """After ``THREAD SP``: (algorithm, charset, criteria)."""
    algorithm = cur.keyword()
    if algorithm not in THREAD_ALGORITHMS:
        raise ParseError(texts.BAD_THREAD_ALGORITHM)
    cur.sp()
    charset, criteria = _criteria(cur)
    return algorithm, charset, criteria
