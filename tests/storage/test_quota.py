"""Usage counters and quota enforcement (RFC 9208 QUOTA), identical on every backend: the
counters follow every append, copy, move, expunge and mailbox deletion, and an enforced
change that would pass the limit stores nothing."""

from __future__ import annotations

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage
from mailwing.storage.errors import OverQuota
from tests.storage.conftest import HASH, inbox_id


async def _sum(storage: Storage, user: User) -> tuple[int, int]:
    """What the counters must equal: a plain sum over the user's mail."""
    count = size = 0
    for box in await storage.list_mailboxes(user.id):
        for entry in await storage.list_mail(box.id):
            count += 1
            size += entry.content.size
    return count, size


async def test_counters_follow_every_change(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    trash = await inbox_id(storage, user, "Trash")
    a = await storage.store_content(b"a" * 100)
    b = await storage.store_content(b"b" * 40)
    await storage.append_many([(a, Delivery(inbox)), (b, Delivery(inbox))])
    assert await storage.usage(user.id) == (2, 140) == await _sum(storage, user)
    await storage.copy_mail(inbox, [1, 2], trash)
    assert await storage.usage(user.id) == (4, 280) == await _sum(storage, user)
    await storage.copy_mail(trash, [1], inbox, move=True)
    assert await storage.usage(user.id) == (4, 280) == await _sum(storage, user)
    await storage.expunge(inbox, [1])
    assert await storage.usage(user.id) == (3, 180) == await _sum(storage, user)
    await storage.create_mailbox(user.id, "Old")
    old = await inbox_id(storage, user, "Old")
    await storage.append(b, [Delivery(old)])
    assert await storage.usage(user.id) == (4, 220)
    await storage.delete_mailbox(user.id, "Old")
    assert await storage.usage(user.id) == (3, 180) == await _sum(storage, user)
    [row] = [u for u in await storage.list_users() if u.address == user.address]
    assert (row.message_count, row.bytes_used) == (3, 180)


async def test_set_quota_and_enforced_append(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    await storage.set_quota(user.address.upper(), 150)
    fresh = await storage.get_user(user.address)
    assert fresh is not None and fresh.quota_bytes == 150
    a = await storage.store_content(b"a" * 100)
    b = await storage.store_content(b"b" * 60)
    await storage.append(a, [Delivery(inbox)], enforce_quota=True)
    with pytest.raises(OverQuota) as info:
        await storage.append(b, [Delivery(inbox)], enforce_quota=True)
    assert info.value.address == user.address
    # all or none: the first of two fits, the second does not; nothing is stored
    small = await storage.store_content(b"c" * 10)
    with pytest.raises(OverQuota):
        await storage.append_many([(small, Delivery(inbox)), (b, Delivery(inbox))],
                                  enforce_quota=True)
    assert [e.uid for e in await storage.list_mail(inbox)] == [1]
    assert await storage.usage(user.id) == (1, 100)
    # unenforced (a delivery that was checked elsewhere) may pass it
    await storage.append(b, [Delivery(inbox)])
    assert await storage.usage(user.id) == (2, 160)
    # a copy adds; a move within the user adds nothing and is allowed even when over quota
    trash = await inbox_id(storage, user, "Trash")
    with pytest.raises(OverQuota):
        await storage.copy_mail(inbox, [1], trash, enforce_quota=True)
    assert await storage.copy_mail(inbox, [1], trash, move=True, enforce_quota=True) == [(1, 1)]
    await storage.set_quota(user.address, None)
    fresh = await storage.get_user(user.address)
    assert fresh is not None and fresh.quota_bytes == 0
    await storage.copy_mail(trash, [1], inbox, enforce_quota=True)
    with pytest.raises(NotFound):
        await storage.set_quota("nobody@example.org", 5)
    with pytest.raises(ValueError):
        await storage.set_quota(user.address, -1)


async def test_quota_of_one_user_does_not_stop_another(storage: Storage, user: User) -> None:
    other, _ = await storage.add_user("bob@example.org", HASH, quota_bytes=10)
    a = await storage.store_content(b"a" * 100)
    inbox = await inbox_id(storage, user)
    bob_inbox = await inbox_id(storage, other)
    await storage.append(a, [Delivery(inbox)], enforce_quota=True)
    with pytest.raises(OverQuota) as info:
        await storage.append(a, [Delivery(bob_inbox)], enforce_quota=True)
    assert info.value.address == "bob@example.org"
    assert await storage.usage(other.id) == (0, 0)
