"""Extended LIST (RFC 5258, RFC 6154 section 3, RFC 5819): which names to answer and with
what attributes.

Why apart from :mod:`mailwing.services.imap_mailboxes`: the base LIST/LSUB rules stay as
RFC 3501 has them; this module adds selection options, return options and CHILDINFO.

- Without SUBSCRIBED/SPECIAL-USE selection, the names are those of the base LIST (real
  mailboxes and the implied parents of real ones) matching any of the patterns; an implied
  parent is ``\\NonExistent`` (which implies ``\\Noselect``, RFC 5258 section 3).
- SUBSCRIBED selects subscribed names and implies the SUBSCRIBED return option; a
  subscribed name without a mailbox is ``\\NonExistent \\Subscribed`` (RFC 5258 section 3);
  SPECIAL-USE (RFC 6154) selects mailboxes with a special-use attribute; with both, a
  mailbox must meet both. REMOTE changes nothing (there are no remote mailboxes).
- RECURSIVEMATCH also returns a matching name that does not meet the criteria but has a
  descendant that does, with ``CHILDINFO`` naming the criteria; a name that meets them and
  has such a descendant gets CHILDINFO too (the table of RFC 9051 section 6.3.9.2).
- ``\\HasChildren``/``\\HasNoChildren`` only with the CHILDREN return option (RFC 5258
  section 4), special-use attributes only with the SPECIAL-USE selection or return option
  (RFC 6154 section 2), as Dovecot does; ``\\Subscribed`` when SUBSCRIBED is selected or
  returned. (The base LIST keeps giving all of them.)
- Several patterns: each name once, in the order first matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailwing.model import Mailbox
from mailwing.services.imap_mailboxes import DELIMITER, ListItem, _pattern, list_items

__all__ = ["ExtendedItem", "extended_list"]

_CHILDREN_ATTRS = ("\\HasChildren", "\\HasNoChildren")


@dataclass(frozen=True, slots=True)
class ExtendedItem:
    name: str
    attributes: tuple[str, ...]
    childinfo: tuple[str, ...] = ()
    mailbox: Mailbox | None = None  # None for a \NonExistent name


def _criteria(select: Sequence[str]) -> tuple[str, ...]:
    return tuple(o for o in select if o in ("SUBSCRIBED", "SPECIAL-USE"))


def _meets(name: str, box: Mailbox | None, criteria: Sequence[str],
           subscribed: set[str]) -> bool:
    """A name without a mailbox meets SUBSCRIBED alone if it is subscribed (RFC 5258
    section 3: ``\\NonExistent \\Subscribed``), never SPECIAL-USE."""
    if "SUBSCRIBED" in criteria and name not in subscribed:
        return False
    if "SPECIAL-USE" in criteria and (box is None or not box.special_use):
        return False
    return box is not None or "SUBSCRIBED" in criteria


def extended_list(mailboxes: Iterable[Mailbox], reference: str, patterns: Sequence[str],
                  select: Sequence[str], returns: Sequence[str],
                  subscriptions: Iterable[str] | None = None) -> list[ExtendedItem]:
    """``subscriptions``: the subscribed names, with or without a mailbox (by default those
    of the subscribed mailboxes)."""
    boxes = {m.name: m for m in mailboxes}
    if subscriptions is None:
        subscribed = {n for n, b in boxes.items() if b.subscribed}
    else:
        subscribed = set(subscriptions)
    criteria = _criteria(select)
    recursive = "RECURSIVEMATCH" in select
    show_subscribed = "SUBSCRIBED" in select or "SUBSCRIBED" in returns
    children = "CHILDREN" in returns
    special = "SPECIAL-USE" in returns or "SPECIAL-USE" in select
    candidates = set(boxes) | (subscribed if "SUBSCRIBED" in criteria else set())
    meeting = ([n for n in candidates if _meets(n, boxes.get(n), criteria, subscribed)]
               if criteria else [])
    seen: set[str] = set()
    out: list[ExtendedItem] = []
    for pattern in patterns:
        items = list_items(boxes.values(), reference, pattern)
        if "SUBSCRIBED" in criteria:  # subscribed names without a mailbox or child
            listed = {i.name for i in items}
            rx = _pattern(reference, pattern)
            items += [ListItem(n, ()) for n in subscribed
                      if n not in listed and n not in boxes and rx.fullmatch(n)]
            items.sort(key=lambda i: (i.name != "INBOX", i.name))
        for item in items:
            if item.name in seen:
                continue
            box = boxes.get(item.name)
            childinfo: tuple[str, ...] = ()
            if criteria:
                prefix = item.name + DELIMITER
                if recursive and any(n.startswith(prefix) for n in meeting):
                    childinfo = criteria
                if not _meets(item.name, box, criteria, subscribed) and not childinfo:
                    continue
            seen.add(item.name)
            attrs = [a for a in item.attributes if a != "\\Noselect"
                     and (children or a not in _CHILDREN_ATTRS)
                     and (special or box is None or a != box.special_use)]
            if box is None:
                attrs.insert(0, "\\NonExistent")
            if show_subscribed and item.name in subscribed:
                attrs.append("\\Subscribed")
            out.append(ExtendedItem(item.name, tuple(attrs), childinfo, box))
    return out
