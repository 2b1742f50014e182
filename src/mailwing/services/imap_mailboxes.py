"""The IMAP view of a user's mailbox tree: name rules, LIST/LSUB matching, attributes.

Why here and not in storage: storage keeps a flat list of names with a ``"/"`` delimiter;
the IMAP tree (implied parents, ``\\HasChildren``, wildcards) is protocol semantics.

- Wildcards (RFC 3501 section 6.3.8): ``*`` matches any characters, ``%`` any characters
  except the hierarchy delimiter. The reference is prefixed to the pattern (our names have
  no leading delimiter, so plain concatenation is the canonical form). ``INBOX`` is
  case-insensitive (section 5.1) and so is the first level of a pattern naming it.
- Attributes: ``\\HasChildren``/``\\HasNoChildren`` (RFC 3348, CHILDREN), ``\\Noselect`` for
  a parent that exists only because a child does (``a`` when only ``a/b`` was created), and
  the RFC 6154 special-use attribute of the mailbox.
- LSUB (section 6.3.9): subscribed names matching the pattern; when ``%`` stops at a level
  whose mailbox is not subscribed but has a subscribed child, that level is listed with
  ``\\Noselect`` (only for ``%``: a pattern without it names no unsubscribed parent). A
  subscribed name without a mailbox (subscriptions outlive mailboxes, 6.3.6) is listed
  with ``\\Noselect`` too.
- Names (section 5.1, 6.3.3): a trailing delimiter is dropped, empty levels, wildcards and
  control characters are refused; CREATE makes the missing parents first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailwing.model import Mailbox

__all__ = [
    "DELIMITER",
    "InvalidName",
    "ListItem",
    "canonical",
    "list_items",
    "lsub_items",
    "parents_of",
]

DELIMITER = "/"
_MAX_NAME = 512


class InvalidName(ValueError):
    """The mailbox name is not acceptable."""


@dataclass(frozen=True, slots=True)
class ListItem:
    """One ``* LIST``/``* LSUB`` line."""

    name: str
    attributes: tuple[str, ...]


#: wildcards and control characters (one scan in C: every APPEND and SELECT checks a name)
_FORBIDDEN = re.compile("[*%\x00-\x1f\x7f]")


def canonical(name: str) -> str:
    """A mailbox name as stored: ``INBOX`` in upper case at the first level, no trailing
    delimiter. Raises :class:`InvalidName` for names IMAP cannot carry safely."""
    if name.endswith(DELIMITER):
        name = name[:-1]
    if not name or len(name) > _MAX_NAME:
        raise InvalidName("invalid mailbox name")
    if _FORBIDDEN.search(name):
        raise InvalidName("mailbox names cannot contain wildcards or control characters")
    levels = name.split(DELIMITER)
    if any(level == "" for level in levels):
        raise InvalidName("mailbox names cannot have empty levels")
    if levels[0].upper() == "INBOX":
        levels[0] = "INBOX"
    return DELIMITER.join(levels)


def parents_of(name: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]`` (outermost first)."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]


def _pattern(reference: str, pattern: str) -> re.Pattern[str]:
    full = reference + pattern
    first, sep, rest = full.partition(DELIMITER)
    if first.upper() == "INBOX":
        full = "INBOX" + sep + rest
    parts = []
    for ch in full:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _tree(names: Iterable[str]) -> tuple[set[str], set[str]]:
    """(every name including implied parents, names that have children)."""
    real = set(names)
    every = set(real)
    with_children: set[str] = set()
    for name in real:
        for parent in parents_of(name):
            every.add(parent)
            with_children.add(parent)
    return every, with_children


def list_items(mailboxes: Iterable[Mailbox], reference: str, pattern: str) -> list[ListItem]:
    """The LIST answer (sorted by name, INBOX first)."""
    boxes = {m.name: m for m in mailboxes}
    every, with_children = _tree(boxes)
    rx = _pattern(reference, pattern)
    out: list[ListItem] = []
    for name in sorted(every, key=lambda n: (n != "INBOX", n)):
        if not rx.fullmatch(name):
            continue
        attrs: list[str] = []
        box = boxes.get(name)
        if box is None:
            attrs.append("\\Noselect")
        attrs.append("\\HasChildren" if name in with_children else "\\HasNoChildren")
        if box is not None and box.special_use:
            attrs.append(box.special_use)
        out.append(ListItem(name, tuple(attrs)))
    return out


def lsub_items(mailboxes: Iterable[Mailbox], reference: str, pattern: str,
               subscriptions: Iterable[str] | None = None) -> list[ListItem]:
    """The LSUB answer. ``subscriptions`` are the subscribed names (by default those of the
    subscribed mailboxes); one with no mailbox is listed with ``\\Noselect``."""
    boxes = list(mailboxes)
    existing = {m.name for m in boxes}
    if subscriptions is None:
        subscribed = {m.name for m in boxes if m.subscribed}
    else:
        subscribed = set(subscriptions)
    rx = _pattern(reference, pattern)
    stops = "%" in reference + pattern  # only "%" stops at a level (RFC 3501 6.3.9)
    found: dict[str, tuple[str, ...]] = {}
    for name in subscribed:
        if rx.fullmatch(name):
            found[name] = () if name in existing else ("\\Noselect",)
            continue
        if not stops:
            continue  # "a" (no wildcard) names only "a", subscribed or not
        for parent in parents_of(name):
            if parent not in subscribed and parent not in found and rx.fullmatch(parent):
                found[parent] = ("\\Noselect",)
    return [ListItem(n, found[n]) for n in sorted(found, key=lambda n: (n != "INBOX", n))]
