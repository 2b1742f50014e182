"""LSUB matching (RFC 3501 6.3.9): "%" returns an unsubscribed parent of a subscribed child
with \\Noselect; a pattern without "%" names no unsubscribed parent."""

from __future__ import annotations

from mailwing.model import Mailbox
from mailwing.services.imap_mailboxes import ListItem, lsub_items


def box(name: str, subscribed: bool) -> Mailbox:
    return Mailbox(id=hash(name) & 0xFFFF, user_id=1, name=name, uidvalidity=1, uidnext=1,
                   highestmodseq=0, special_use=None, subscribed=subscribed)


BOXES = [box("a", False), box("a/b", False), box("a/b/c", True)]


def test_percent_stops_at_an_unsubscribed_parent() -> None:
    assert lsub_items(BOXES, "", "%") == [ListItem("a", ("\\Noselect",))]
    assert lsub_items(BOXES, "", "a/%") == [ListItem("a/b", ("\\Noselect",))]
    assert lsub_items(BOXES, "a/", "%") == [ListItem("a/b", ("\\Noselect",))]
    assert lsub_items(BOXES, "", "a/b/%") == [ListItem("a/b/c", ())]


def test_no_percent_no_unsubscribed_parent() -> None:
    assert lsub_items(BOXES, "", "a") == []
    assert lsub_items(BOXES, "", "a/*") == [ListItem("a/b/c", ())]
