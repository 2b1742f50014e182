"""IMAP mailbox tree and per-mailbox state: delete, rename (RFC 3501 6.3.4, 6.3.5),
subscriptions, lookup by id, STATUS counts and the \\Recent floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwing.model import User
from mailwing.storage import AlreadyExists, Delivery, NotFound, Storage
from mailwing.storage.interface import MailboxCounts
from tests.storage.conftest import fill, inbox_id
from tests.storage.test_mail import stored_copies

MESSAGE = b"From: a@example.org\r\nSubject: tree\r\n\r\nbody\r\n"


async def _names(storage: Storage, user: User) -> list[str]:
    return [b.name for b in await storage.list_mailboxes(user.id)]


async def test_get_mailbox_by_id_has_fresh_counters(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    before = await storage.get_mailbox_by_id(inbox)
    assert before is not None and before.name == "INBOX" and before.uidnext == 1
    await fill(storage, inbox, 2, MESSAGE)
    after = await storage.get_mailbox_by_id(inbox)
    assert after is not None
    assert (after.uidnext, after.highestmodseq) == (3, before.highestmodseq + 2)
    assert after == await storage.get_mailbox(user.id, "inbox")
    assert await storage.get_mailbox_by_id(999_999) is None


async def test_delete_mailbox_removes_its_mail_and_orphaned_contents(
    storage: Storage, user: User, database_url: str, data_dir: Path
) -> None:
    inbox = await inbox_id(storage, user)
    box = await storage.create_mailbox(user.id, "Lists")
    child = await storage.create_mailbox(user.id, "Lists/python")
    shared = await storage.store_content(b"Subject: shared\r\n\r\n")
    alone = await storage.store_content(b"Subject: alone\r\n\r\n")
    await storage.append(shared, [Delivery(box.id), Delivery(inbox)])
    await storage.append(alone, [Delivery(box.id), Delivery(box.id)])
    await storage.delete_mailbox(user.id, "Lists")
    assert "Lists" not in await _names(storage, user)
    assert await storage.get_mailbox_by_id(box.id) is None
    assert await storage.get_mailbox_by_id(child.id) is not None  # children are left alone
    with pytest.raises(NotFound):
        await storage.read_content(alone.sha256)
    assert await stored_copies(database_url, data_dir, alone.sha256) == 0
    assert await storage.read_content(shared.sha256) == b"Subject: shared\r\n\r\n"
    assert await storage.usage(user.id) == (1, shared.size)
    with pytest.raises(NotFound):
        await storage.delete_mailbox(user.id, "Lists")


async def test_rename_moves_children_and_keeps_uidvalidity(storage: Storage, user: User) -> None:
    parent = await storage.create_mailbox(user.id, "Work", "\\Flagged")
    child = await storage.create_mailbox(user.id, "Work/2024")
    grandchild = await storage.create_mailbox(user.id, "Work/2024/Q1")
    other = await storage.create_mailbox(user.id, "Workshop")  # a prefix, not a child
    await fill(storage, child.id, 2, MESSAGE)
    renamed = await storage.rename_mailbox(user.id, "Work", "Jobs/Old")
    assert (renamed.id, renamed.name, renamed.uidvalidity, renamed.special_use) == (
        parent.id, "Jobs/Old", parent.uidvalidity, "\\Flagged"
    )
    names = await _names(storage, user)
    assert {"Jobs/Old", "Jobs/Old/2024", "Jobs/Old/2024/Q1", "Workshop"} <= set(names)
    assert not any(n == "Work" or n.startswith("Work/") for n in names)
    moved = await storage.get_mailbox(user.id, "Jobs/Old/2024")
    assert moved is not None and moved.id == child.id and moved.uidvalidity == child.uidvalidity
    assert [e.uid for e in await storage.list_mail(child.id)] == [1, 2]
    deep = await storage.get_mailbox(user.id, "Jobs/Old/2024/Q1")
    assert deep is not None and deep.id == grandchild.id
    still = await storage.get_mailbox(user.id, "Workshop")
    assert still is not None and still.id == other.id


async def test_rename_into_own_subtree(storage: Storage, user: User) -> None:
    await storage.create_mailbox(user.id, "a")
    await storage.create_mailbox(user.id, "a/a")
    await storage.rename_mailbox(user.id, "a", "a/a/b")
    assert {"a/a/b", "a/a/b/a"} <= set(await _names(storage, user))


async def test_rename_onto_existing_name_or_missing(storage: Storage, user: User) -> None:
    await storage.create_mailbox(user.id, "One")
    await storage.create_mailbox(user.id, "One/sub")
    await storage.create_mailbox(user.id, "Two")
    await storage.create_mailbox(user.id, "Two/sub")
    with pytest.raises(AlreadyExists):
        await storage.rename_mailbox(user.id, "One", "Two")
    with pytest.raises(AlreadyExists):
        await storage.rename_mailbox(user.id, "One", "One")
    with pytest.raises(AlreadyExists):
        await storage.rename_mailbox(user.id, "One", "inbox")
    await storage.create_mailbox(user.id, "Three/sub")  # only a child would clash
    with pytest.raises(AlreadyExists):
        await storage.rename_mailbox(user.id, "One", "Three")
    with pytest.raises(NotFound):
        await storage.rename_mailbox(user.id, "Nope", "Other")
    assert {"One", "One/sub", "Two", "Two/sub"} <= set(await _names(storage, user))


async def test_rename_inbox_moves_mail_to_a_new_mailbox(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    child = await storage.create_mailbox(user.id, "INBOX/keep")
    await fill(storage, inbox, 3, MESSAGE)
    await storage.set_flags(inbox, [2], ["\\Seen"], "add")
    before = await storage.get_mailbox_by_id(inbox)
    old_entries = await storage.list_mail(inbox)
    made = await storage.rename_mailbox(user.id, "inbox", "Old Inbox")
    assert made.name == "Old Inbox" and made.id != inbox
    assert before is not None and made.uidvalidity != before.uidvalidity
    moved = await storage.list_mail(made.id)
    assert [e.uid for e in moved] == [1, 2, 3]
    assert [e.flags for e in moved] == [e.flags for e in old_entries]
    assert [e.content for e in moved] == [e.content for e in old_entries]
    assert made.uidnext == 4
    after = await storage.get_mailbox_by_id(inbox)
    assert after is not None and after.uidvalidity == before.uidvalidity
    assert after.uidnext == before.uidnext and after.highestmodseq > before.highestmodseq
    assert await storage.list_mail(inbox) == []
    _, _, expunged = await storage.mail_changes(inbox, before.highestmodseq)
    assert expunged == [1, 2, 3]
    kept = await storage.get_mailbox(user.id, "INBOX/keep")
    assert kept is not None and kept.id == child.id
    with pytest.raises(AlreadyExists):
        await storage.rename_mailbox(user.id, "INBOX", "Old Inbox")


async def test_set_subscribed(storage: Storage, user: User) -> None:
    await storage.set_subscribed(user.id, "Sent", False)
    sent = await storage.get_mailbox(user.id, "Sent")
    assert sent is not None and not sent.subscribed
    await storage.set_subscribed(user.id, "inbox", False)
    await storage.set_subscribed(user.id, "Sent", True)
    boxes = {b.name: b.subscribed for b in await storage.list_mailboxes(user.id)}
    assert boxes["Sent"] and not boxes["INBOX"]
    await storage.set_subscribed(user.id, "Sent", True)  # idempotent
    assert "Sent" in await storage.list_subscriptions(user.id)
    with pytest.raises(NotFound):
        await storage.set_subscribed(999_999, "Sent", True)  # no such user


async def test_subscriptions_are_names_without_mailboxes(storage: Storage, user: User) -> None:
    """RFC 3501 6.3.6/6.3.7: a name can be subscribed with no mailbox, and unsubscribed."""
    assert await storage.get_mailbox(user.id, "Missing") is None
    await storage.set_subscribed(user.id, "Missing", True)
    await storage.set_subscribed(user.id, "inbox", True)  # INBOX in any case
    subs = await storage.list_subscriptions(user.id)
    assert "Missing" in subs and subs[0] == "INBOX" and subs.count("INBOX") == 1
    assert "Missing" not in await _names(storage, user)
    await storage.set_subscribed(user.id, "Missing", False)
    await storage.set_subscribed(user.id, "Missing", False)  # not subscribed: still fine
    assert "Missing" not in await storage.list_subscriptions(user.id)


async def test_default_and_created_mailboxes_are_subscribed(storage: Storage, user: User) -> None:
    subs = set(await storage.list_subscriptions(user.id))
    assert subs == set(await _names(storage, user))  # the defaults, INBOX among them
    await storage.create_mailbox(user.id, "Lists")
    assert "Lists" in await storage.list_subscriptions(user.id)


async def test_delete_keeps_the_subscription(storage: Storage, user: User) -> None:
    """RFC 3501 6.3.6: the server MUST NOT unilaterally remove a subscribed name."""
    await storage.create_mailbox(user.id, "Gone")
    await storage.delete_mailbox(user.id, "Gone")
    assert "Gone" in await storage.list_subscriptions(user.id)
    box = await storage.create_mailbox(user.id, "Gone")  # created again: still subscribed
    assert box.subscribed
    await storage.set_subscribed(user.id, "Gone", False)
    await storage.delete_mailbox(user.id, "Gone")
    assert "Gone" not in await storage.list_subscriptions(user.id)


async def test_rename_moves_subscriptions(storage: Storage, user: User) -> None:
    await storage.create_mailbox(user.id, "a")
    await storage.create_mailbox(user.id, "a/b")
    await storage.create_mailbox(user.id, "a/c")
    await storage.set_subscribed(user.id, "a/c", False)
    await storage.set_subscribed(user.id, "a/ghost", True)  # no mailbox: not moved
    await storage.rename_mailbox(user.id, "a", "z")
    subs = set(await storage.list_subscriptions(user.id))
    assert {"z", "z/b", "a/ghost"} <= subs
    assert not subs & {"a", "a/b", "a/c", "z/c", "z/ghost"}
    boxes = {b.name: b.subscribed for b in await storage.list_mailboxes(user.id)}
    assert boxes["z"] and boxes["z/b"] and not boxes["z/c"]
    await storage.rename_mailbox(user.id, "z", "z/z")  # into its own subtree
    subs = set(await storage.list_subscriptions(user.id))
    assert {"z/z", "z/z/b"} <= subs and "z/b" not in subs


async def test_subscriptions_go_with_the_user(storage: Storage, user: User) -> None:
    await storage.set_subscribed(user.id, "Missing", True)
    await storage.delete_user(user.address)
    assert await storage.list_subscriptions(user.id) == []


async def test_mailbox_counts(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    trash = await inbox_id(storage, user, "Trash")
    assert await storage.mailbox_counts(trash) == MailboxCounts(0, 0, 0)
    content = await storage.store_content(MESSAGE)
    await storage.append(content, [Delivery(inbox, frozenset({"\\Seen"}))])
    await storage.append(content, [Delivery(inbox, frozenset({"$Seen", "\\Seenx"}))])
    await storage.append(content, [Delivery(inbox)])
    counts = await storage.mailbox_counts(inbox)
    assert (counts.messages, counts.unseen, counts.recent) == (3, 2, 3)
    await storage.claim_recent(inbox)
    await storage.append(content, [Delivery(inbox, frozenset({"\\seen"}))])
    assert await storage.mailbox_counts(inbox) == MailboxCounts(4, 2, 1, 4 * content.crlf_size)
    with pytest.raises(NotFound):
        await storage.mailbox_counts(999_999)


async def test_mailbox_counts_size_is_the_crlf_size_sum(storage: Storage, user: User) -> None:
    """STATUS=SIZE (RFC 8438): the RFC822.SIZE of every message, bare LFs counted as CRLF."""
    inbox = await inbox_id(storage, user)
    lf = await storage.store_content(b"Subject: a\n\nbody\n")
    crlf = await storage.store_content(b"Subject: b\r\n\r\nlonger body\r\n")
    await storage.append(lf, [Delivery(inbox)])
    await storage.append(lf, [Delivery(inbox)])
    await storage.append(crlf, [Delivery(inbox)])
    assert (await storage.mailbox_counts(inbox)).size == 2 * 19 + 29
    assert (await storage.mailbox_counts(await inbox_id(storage, user, "Trash"))).size == 0


async def test_claim_recent_hands_each_message_to_one_session(
    storage: Storage, user: User
) -> None:
    inbox = await inbox_id(storage, user)
    await fill(storage, inbox, 2, MESSAGE)
    first = await storage.claim_recent(inbox)
    assert first == 1  # UIDs 1 and 2 are recent for the first session
    second = await storage.claim_recent(inbox)
    assert second == 3  # nothing is recent for the next one
    await fill(storage, inbox, 1, MESSAGE)
    assert await storage.claim_recent(inbox) == 3
    assert await storage.claim_recent(inbox) == 4
    with pytest.raises(NotFound):
        await storage.claim_recent(999_999)
