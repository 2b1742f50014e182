"""THREAD algorithms (RFC 5256 sections 3 and 4) and the THREAD response (section 5).

Why pure: threading is a function of a few header facts per message (number, sent date,
Message-ID, References/In-Reply-To, base subject); the session gathers them, this module
arranges them. No I/O, stdlib only.

- ORDEREDSUBJECT (section 3, "poor man's threading"): messages grouped by base subject, each
  group in sent-date order, the first message the parent of all the others, groups ordered
  by the date of their first message.
- REFERENCES (section 3, after Jamie Zawinski's algorithm): parent/child links from
  References (or the first In-Reply-To id), a message's parent being its last reference;
  links that would make a loop are not made; dummy (missing) parents are pruned; siblings
  are ordered by sent date; root threads with the same base subject are merged (step 6).
- Ties in date are broken by the message sequence number (section 2.2).
- Response (section 5): ``(1 2 (3)(4 5))``: a chain of single children is written flat,
  several children each in their own parentheses; a dummy root writes only its children.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mailwing.proto.imap.basesubject import base_subject, casemap

__all__ = ["Node", "ThreadMessage", "format_threads", "ordered_subject", "parse_msgids",
           "references"]

_MSGID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """One matched message: ``number`` is what the response shows (UID or sequence number),
    ``seq`` breaks ties, ``date`` is the sent date (UTC seconds; the internal date when the
    Date: field is missing or unparsable, section 2.2)."""

    number: int
    seq: int
    date: float
    subject: str | None = None
    message_id: str | None = None
    references: tuple[str, ...] = ()  # References ids, or the first In-Reply-To id


@dataclass(eq=False, slots=True)
class Node:
    message: ThreadMessage | None = None  # None: a dummy (a referenced message not here)
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)


def parse_msgids(value: str | None) -> list[str]:
    """The ``<id>`` values of a References or In-Reply-To field, without brackets."""
    return _MSGID.findall(value or "")


def _key(node: Node) -> tuple[float, int]:
    while node.message is None and node.children:  # a dummy sorts by its first child
        node = node.children[0]
    return (node.message.date, node.message.seq) if node.message is not None else (0.0, 0)


def _sort(nodes: list[Node]) -> None:
    """Sort siblings by sent date recursively (a dummy sorts by its first child)."""
    stack = [nodes]
    order: list[list[Node]] = []
    while stack:  # children first, so a dummy's first child is known when it is sorted
        level = stack.pop()
        order.append(level)
        stack.extend(n.children for n in level if n.children)
    for level in reversed(order):
        level.sort(key=_key)


def ordered_subject(messages: Iterable[ThreadMessage]) -> list[Node]:
    groups: dict[bytes, list[ThreadMessage]] = {}
    for m in messages:
        groups.setdefault(casemap(base_subject(m.subject)[0]), []).append(m)
    roots: list[Node] = []
    for members in groups.values():
        members.sort(key=lambda m: (m.date, m.seq))
        root = Node(members[0])
        root.children = [Node(m, root) for m in members[1:]]
        roots.append(root)
    roots.sort(key=_key)
    return roots


def _is_ancestor(node: Node, other: Node | None) -> bool:
    """True when ``node`` is ``other`` or one of its ancestors."""
    if not node.children:  # a leaf is nobody's ancestor: no walk up a long chain
        return node is other
    depth = 0
    while other is not None and depth < 100_000:
        if other is node:
            return True
        other = other.parent
        depth += 1
    return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _prune(nodes: list[Node], at_root: bool) -> list[Node]:
    """Step 4, without recursion (a reply chain may be thousands of messages deep): drop
    empty dummies, splice a dummy's children into its place (at the root only when it has
    one child)."""
    order: list[Node] = []
    stack = list(nodes)
    while stack:  # every node below the root level, parents before children
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):  # children are final before their parent is done
        kept: list[Node] = []
        for child in node.children:
            if child.message is None:
                for grandchild in child.children:
                    grandchild.parent = node
                kept.extend(child.children)
            else:
                kept.append(child)
        node.children = kept
    out: list[Node] = []
    for node in nodes:
        if node.message is None:
            if not node.children:
                continue
            if not at_root or len(node.children) == 1:
                for child in node.children:
                    child.parent = None if at_root else node.parent
                out.extend(node.children)
                continue
        out.append(node)
    return out


def _subject(node: Node) -> tuple[str, bool]:
    msg = node.message if node.message is not None else node.children[0].message
    return base_subject(msg.subject if msg is not None else None)


def references(messages: Sequence[ThreadMessage]) -> list[Node]:
    """The REFERENCES algorithm of RFC 5256 section 3 (steps 1 to 7)."""
    table: dict[str, Node] = {}
    for m in messages:  # step 1: containers; missing or duplicate ids get unique ones
        mid = m.message_id
        known = table.get(mid) if mid else None
        if mid and known is None:
            node = table[mid] = Node(m)
        elif known is not None and known.message is None:  # referenced before: fill it
            node = known
            node.message = m
        else:
            mid = None
            node = table[f"\x00{m.seq}"] = Node(m)
        refs = [r for r in m.references if r != mid]
        prev: Node | None = None
        for ref in refs:  # step 1A
            ref_node = table.setdefault(ref, Node())
            if (prev is not None and ref_node.parent is None
                    and not _is_ancestor(ref_node, prev)):
                _link(prev, ref_node)
            prev = ref_node
        if node.parent is not None:  # step 1B: the last reference is the parent
            node.parent.children.remove(node)
            node.parent = None
        if prev is not None and not _is_ancestor(node, prev):
            _link(prev, node)
    roots = [n for n in table.values() if n.parent is None]  # step 2
    roots = _prune(roots, True)  # step 4
    _sort(roots)  # step 5
    # step 6: merge root threads by base subject
    by_subject: dict[bytes, Node] = {}
    for node in roots:
        text, reply = _subject(node)
        if not text:
            continue
        key = casemap(text)
        other = by_subject.get(key)
        if (other is None or (node.message is None and other.message is not None)
                or (_subject(other)[1] and not reply)):
            by_subject[key] = node
    merged: list[Node] = []
    where: dict[int, int] = {}  # id(node) -> its index in merged (no list scans: 10,000 roots)
    for node in roots:
        text, reply = _subject(node)
        target = by_subject.get(casemap(text)) if text else None
        if target is None or target is node:
            if node.parent is None:
                where[id(node)] = len(merged)
                merged.append(node)
            continue
        if node.message is None and target.message is None:
            for child in list(node.children):
                _link(target, child)
        elif target.message is None or (reply and not _subject(target)[1]):
            _link(target, node)
        else:
            dummy = Node()
            index = where.pop(id(target), None)
            _link(dummy, target)
            _link(dummy, node)
            by_subject[casemap(text)] = dummy
            if index is None:
                index = len(merged)
                merged.append(dummy)
            merged[index] = dummy
            where[id(dummy)] = index
    merged = [n for n in merged if n.parent is None]
    _sort(merged)  # step 7
    return merged


def _render(root: Node, out: list[str]) -> None:
    """Section 5 syntax, without recursion: a chain of single children is written flat,
    several children each in parentheses."""
    stack: list[Node | str] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node = item
        while True:
            if node.message is not None:
                out.append(str(node.message.number))
            if len(node.children) == 1 and node.message is not None:
                out.append(" ")
                node = node.children[0]
                continue
            if node.children:
                if node.message is not None:
                    out.append(" ")
                for child in reversed(node.children):
                    stack.extend((")", child, "("))
            break


def format_threads(roots: Iterable[Node]) -> bytes:
    """``* THREAD (...)(...)`` including CRLF."""
    out: list[str] = ["* THREAD "]
    for root in roots:
        out.append("(")
        _render(root, out)
        out.append(")")
    return "".join(out).rstrip(" ").encode("utf-8") + b"\r\n"
