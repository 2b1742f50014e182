"""FETCH data items (RFC 3501 section 6.4.5, formal syntax ``fetch-att`` in section 9).

Why: one small value type per requested item lets the session decide what to load (flags
only, metadata, or a body section), whether the fetch sets ``\\Seen`` (a non-PEEK
``BODY[...]``, ``RFC822`` and ``RFC822.TEXT``: section 6.4.5), and what name to echo in the
response. The echoed name follows section 7.4.2: ``BODY.PEEK[...]`` is answered as
``BODY[...]`` and a partial ``<start.length>`` is answered as ``<start>`` only.

``BODY`` without a section is the non-extensible BODYSTRUCTURE (``section is None``);
``BODY[]`` is ``name == "BODY"`` with ``section == Section()``. The macros ``ALL``, ``FAST``
and ``FULL`` are expanded at parse time. ``MODSEQ`` (RFC 7162) is parsed only. ``EMAILID``
and ``THREADID`` (RFC 8474) and ``PREVIEW [(LAZY)]`` (RFC 8970; the modifier changes nothing
here, previews are always computed and cached) are simple items.
RFC 3516 ``BINARY[part]<partial>``, ``BINARY.PEEK[...]`` and ``BINARY.SIZE[part]`` are items
with ``name`` ``BINARY``/``BINARY.SIZE`` and a section holding part numbers only.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwing.proto.imap import texts
from mailwing.proto.imap.grammar import Cursor, ParseError

__all__ = ["MACROS", "FetchItem", "Section", "parse_fetch_items", "parse_section"]

SECTION_TEXTS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")
SIMPLE_ITEMS = frozenset({
    "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT",
    "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",
    "EMAILID", "THREADID", "PREVIEW",  # RFC 8474 section 5, RFC 8970 section 3
})
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
_SECTION_CHARS = _NAME_CHARS | frozenset(b"-")


@dataclass(frozen=True, slots=True)
class Section:
    """``section-spec``: ``part`` numbers (``()`` = the whole message), then an optional
    ``text`` specifier, with the header ``fields`` for HEADER.FIELDS[.NOT]."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(str(p) for p in self.part)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One requested item; ``partial`` is ``(start, length)``."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    @property
    def is_section(self) -> bool:
        return self.section is not None

    @property
    def response_name(self) -> str:
        if self.section is None:
            return self.name
        name = f"{self.name}[{self.section}]"
        if self.partial is not None:
            name += f"<{self.partial[0]}>"
        return name

    @property
    def binary(self) -> bool:
        """An RFC 3516 BINARY, BINARY.PEEK or BINARY.SIZE item."""
        return self.name.startswith("BINARY")

    @property
    def sets_seen(self) -> bool:
        if self.name == "BINARY.SIZE":
            return False
        if self.section is not None:
            return not self.peek
        return self.name in ("RFC822", "RFC822.TEXT")

    def __str__(self) -> str:
        if self.section is None:
            return self.name
        name = f"{self.name}.PEEK" if self.peek else self.name
        name += f"[{self.section}]"
        if self.partial is not None:
            name += f"<{self.partial[0]}.{self.partial[1]}>"
        return name


def _f(name: str) -> FetchItem:
    return FetchItem(name)


MACROS: dict[str, tuple[FetchItem, ...]] = {
    "FAST": (_f("FLAGS"), _f("INTERNALDATE"), _f("RFC822.SIZE")),
    "ALL": (_f("FLAGS"), _f("INTERNALDATE"), _f("RFC822.SIZE"), _f("ENVELOPE")),
    "FULL": (_f("FLAGS"), _f("INTERNALDATE"), _f("RFC822.SIZE"), _f("ENVELOPE"), _f("BODY")),
}


def _run(cur: Cursor, chars: frozenset[int]) -> str:
    return cur.run(chars).decode("ascii").upper()


def _field_name(cur: Cursor) -> str:
    try:
        name = cur.astring().decode("ascii")
    except UnicodeDecodeError as exc:
        raise ParseError(texts.BAD_SECTION) from exc
    if not name or any(c <= " " or c in ":\x7f" for c in name):
        raise ParseError(texts.BAD_SECTION)
    return name


def _section(cur: Cursor) -> Section:
    spec = _run(cur, _SECTION_CHARS)
    parts: list[int] = []
    words = spec.split(".") if spec else []
    while words and words[0].isdigit():
        if words[0].startswith("0") or len(words[0]) > 9:
            raise ParseError(texts.BAD_SECTION)
        parts.append(int(words.pop(0)))
    text = ".".join(words) or None
    if text is not None and (text not in SECTION_TEXTS or (text == "MIME" and not parts)):
        raise ParseError(texts.BAD_SECTION)
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        cur.sp()
        fields = cur.paren_list(lambda: _field_name(cur))
        if not fields:
            raise ParseError(texts.BAD_SECTION)
    cur.expect(b"]")
    return Section(tuple(parts), text, fields)


def parse_section(text: str) -> Section:
    """A ``section-spec`` given as text (an IMAP URL's ``;SECTION=``): ParseError (a
    ValueError) unless it is one."""
    try:
        cur = Cursor([text.encode("ascii") + b"]"])
    except UnicodeEncodeError as exc:
        raise ParseError(texts.BAD_SECTION) from exc
    section = _section(cur)
    cur.end()
    return section


def _binary_section(cur: Cursor) -> Section:
    """RFC 3516 ``section-binary``: ``"[" [section-part] "]"``."""
    spec = _run(cur, _SECTION_CHARS)
    parts: list[int] = []
    for word in spec.split(".") if spec else []:
        if not word.isdigit() or word.startswith("0") or len(word) > 9:
            raise ParseError(texts.BAD_SECTION)
        parts.append(int(word))
    cur.expect(b"]")
    return Section(tuple(parts))


#: one shared (immutable) item per plain name instead of a new one per FETCH
_PLAIN_ITEMS = {name: FetchItem(name) for name in SIMPLE_ITEMS}


def _item(cur: Cursor) -> FetchItem:
    name = _run(cur, _NAME_CHARS)
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE") and cur.accept(b"["):
        section = _binary_section(cur)
        partial = None
        if name != "BINARY.SIZE" and cur.accept(b"<"):
            start = cur.number()
            cur.expect(b".")
            length = cur.number(nonzero=True)
            cur.expect(b">")
            partial = (start, length)
        base = "BINARY.SIZE" if name == "BINARY.SIZE" else "BINARY"
        return FetchItem(base, section, partial, peek=name == "BINARY.PEEK")
    if name in ("BODY", "BODY.PEEK") and cur.accept(b"["):
        section = _section(cur)
        partial = None
        if cur.accept(b"<"):
            start = cur.number()
            cur.expect(b".")
            length = cur.number(nonzero=True)
            cur.expect(b">")
            partial = (start, length)
        return FetchItem("BODY", section, partial, peek=name == "BODY.PEEK")
    if name not in SIMPLE_ITEMS:
        raise ParseError(texts.BAD_FETCH_ITEM)
    if name == "PREVIEW" and bytes(cur.buf[cur.pos:cur.pos + 6]).upper() == b" (LAZY":
        cur.pos += 1  # RFC 8970 preview-mod list: only LAZY is defined
        if cur.paren_atoms() != ("LAZY",):
            raise ParseError(texts.BAD_FETCH_ITEM)
    return _PLAIN_ITEMS[name]


def parse_fetch_items(cur: Cursor) -> tuple[FetchItem, ...]:
    """``fetch-att``, ``"(" fetch-att *(SP fetch-att) ")"`` or a macro."""
    if cur.accept(b"("):
        items = [_item(cur)]
        while not cur.accept(b")"):
            cur.sp()
            items.append(_item(cur))
        return tuple(dict.fromkeys(items))
    start = cur.pos
    word = _run(cur, _NAME_CHARS)
    if word in MACROS and cur.peek() in (-1, ord(" ")):
        return MACROS[word]
    cur.pos = start
    return (_item(cur),)
