"""LIST-EXTENDED and LIST-STATUS grammar (RFC 5258 section 6, RFC 5819 section 5, RFC 6154
section 6), and the extended LIST response line.

Why apart from ``parser.py``: the return options may nest (``STATUS (MESSAGES SIZE)``) and
the option rules (which names exist, RECURSIVEMATCH never alone) belong together.

- selection options: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE; an unknown one is a
  syntax error (RFC 5258 section 3: BAD), so is RECURSIVEMATCH without SUBSCRIBED or
  SPECIAL-USE (section 3, "MUST NOT occur as the only selection option, or only with
  REMOTE");
- return options: SUBSCRIBED, CHILDREN, SPECIAL-USE and ``STATUS (items)``, the items being
  those STATUS accepts.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailwing.proto.imap import texts, wire
from mailwing.proto.imap.grammar import Cursor, ParseError

__all__ = ["RETURN_OPTIONS", "SELECT_OPTIONS", "list_line", "parse_return_options",
           "parse_select_options"]

SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


def parse_select_options(cur: Cursor) -> tuple[str, ...]:
    options = tuple(dict.fromkeys(cur.paren_atoms()))
    if not SELECT_OPTIONS.issuperset(options):
        raise ParseError(texts.BAD_LIST_OPTION)
    if "RECURSIVEMATCH" in options and not set(options) - {"RECURSIVEMATCH", "REMOTE"}:
        raise ParseError(texts.BAD_RECURSIVEMATCH)
    return options


def parse_return_options(cur: Cursor, status_items: frozenset[str]
                         ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``"(" [option *(SP option)] ")"`` -> (options, STATUS items)."""
    options: list[str] = []
    items: tuple[str, ...] = ()
    cur.expect(b"(")
    while not cur.accept(b")"):
        if options:
            cur.sp()
        word = cur.keyword()
        if word not in RETURN_OPTIONS or word in options:
            raise ParseError(texts.BAD_LIST_OPTION)
        if word == "STATUS":
            cur.sp()
            items = tuple(dict.fromkeys(cur.paren_atoms()))
            if not items or not status_items.issuperset(items):
                raise ParseError(texts.BAD_STATUS_ITEM)
        options.append(word)
    return tuple(options), items


def list_line(attributes: Iterable[str], delimiter: str, name: str,
              childinfo: Iterable[str] = ()) -> bytes:
    """``* LIST (attrs) "/" name [("CHILDINFO" ("SUBSCRIBED"))]`` (RFC 5258 section 4)."""
    line = (b"* LIST " + wire.flag_list(attributes) + b" " + wire.quoted(delimiter) + b" "
            + wire.encode_mailbox(name))
    info = [wire.quoted(c) for c in childinfo]
    if info:
        line += b' ("CHILDINFO" (' + b" ".join(info) + b"))"
    return line + b"\r\n"
