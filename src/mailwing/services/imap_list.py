"""Extended LIST (RFC 5258, RFC 6154 section 3, RFC 5819): which names to answer and with
what attributes.

Why apart from :mod:`mailwing.services.imap_mailboxes`: the base LIST/LSUB rules stay as
RFC 3501 has them; this module adds selection options, return options and CHILDINFO.

- Without SUBSCRIBED/SPECIAL-USE selection, the names are those of the base LIST (real
  mailboxes and the implied parents of real ones) matching any of the patterns; an implied
  parent is ``\\NonExistent`` (which implies ``\\Noselect``, RFC 5258 section 3).
- SUBSCRIBED selects subscribed mailboxes and implies the SUBSCRIBED return option;
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
from mailwing.services.imap_mailboxes import DELIMITER, list_items

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


def _meets(box: Mailbox | None, criteria: Sequence[str]) -> bool:
    if box is None:
        return False
    if "SUBSCRIBED" in criteria and not box.subscribed:
        return False
    return not ("SPECIAL-USE" in criteria and not box.special_use)


def extended_list(mailboxes: Iterable[Mailbox], reference: str, patterns: Sequence[str],
                  select: Sequence[str], returns: Sequence[str]) -> list[ExtendedItem]:
    boxes = {m.name: m for m in mailboxes}
    criteria = _criteria(select)
    recursive = "RECURSIVEMATCH" in select
    show_subscribed = "SUBSCRIBED" in select or "SUBSCRIBED" in returns
    children = "CHILDREN" in returns
    special = "SPECIAL-USE" in returns or "SPECIAL-USE" in select
    meeting = [n for n, b in boxes.items() if _meets(b, criteria)] if criteria else []
    seen: set[str] = set()
    out: list[ExtendedItem] = []
    for pattern in patterns:
        for item in list_items(boxes.values(), reference, pattern):
            if item.name in seen:
                continue
            box = boxes.get(item.name)
            childinfo: tuple[str, ...] = ()
            if criteria:
                prefix = item.name + DELIMITER
                if recursive and any(n.startswith(prefix) for n in meeting):
                    childinfo = criteria
                if not _meets(box, criteria) and not childinfo:
                    continue
            seen.add(item.name)
            attrs = [a for a in item.attributes if a != "\\Noselect"
                     and (children or a not in _CHILDREN_ATTRS)
                     and (special or box is None or a != box.special_use)]
            if box is None:
                attrs.insert(0, "\\NonExistent")
            elif show_subscribed and box.subscribed:
                attrs.append("\\Subscribed")
            out.append(ExtendedItem(item.name, tuple(attrs), childinfo, box))
    return out
