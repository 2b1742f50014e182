"""Domains, users and mailboxes, identical on every backend."""

from __future__ import annotations

import pytest

from mailwing.model import DEFAULT_MAILBOXES, User
from mailwing.storage import (
    AlreadyExists,
    Delivery,
    InUse,
    NotFound,
    Storage,
)
from mailwing.storage.interface import RecipientLookup
from tests.storage.conftest import HASH, inbox_id


async def test_domains_add_list_get_delete(storage: Storage) -> None:
    b = await storage.add_domain("B.example")
    a = await storage.add_domain("a.example")
    assert b.name == "b.example"
    assert [d.name for d in await storage.list_domains()] == ["a.example", "b.example"]
    assert await storage.get_domain("A.EXAMPLE") == a
    assert await storage.get_domain("nowhere.example") is None
    with pytest.raises(AlreadyExists):
        await storage.add_domain("a.example")
    await storage.delete_domain("a.example")
    assert [d.name for d in await storage.list_domains()] == ["b.example"]
    with pytest.raises(NotFound):
        await storage.delete_domain("a.example")


async def test_domain_in_use_cannot_be_deleted(storage: Storage) -> None:
    await storage.add_domain("example.net")
    await storage.add_user("u@example.net", HASH)
    with pytest.raises(InUse):
        await storage.delete_domain("example.net")
    await storage.delete_user("u@example.net")
    await storage.delete_domain("example.net")


async def test_add_user_creates_default_mailboxes(storage: Storage) -> None:
    await storage.add_domain("example.com")
    user, created = await storage.add_user("Bob@Example.COM", HASH, quota_bytes=1000)
    assert not created
    assert user.address == "bob@example.com"
    assert (user.enabled, user.quota_bytes, user.password_hash) == (True, 1000, HASH)
    assert user.created_at.tzinfo is not None
    boxes = {b.name: b for b in await storage.list_mailboxes(user.id)}
    assert {name: boxes[name].special_use for name, _ in DEFAULT_MAILBOXES} == dict(
        DEFAULT_MAILBOXES
    )
    assert len(boxes) == len(DEFAULT_MAILBOXES)
    for box in boxes.values():
        assert box.subscribed and box.uidnext == 1 and box.user_id == user.id
        assert 0 < box.uidvalidity <= 0xFFFFFFFF
    assert len({b.uidvalidity for b in boxes.values()}) == len(boxes)
    names = [b.name for b in await storage.list_mailboxes(user.id)]
    assert names == sorted(names)


async def test_add_user_domain_rules(storage: Storage) -> None:
    with pytest.raises(NotFound):
        await storage.add_user("x@unknown.example", HASH)
    assert await storage.list_domains() == []
    user, created = await storage.add_user("x@new.example", HASH, create_domain=True)
    assert created
    domain = await storage.get_domain("new.example")
    assert domain is not None and user.domain_id == domain.id
    _, created_again = await storage.add_user("y@new.example", HASH, create_domain=True)
    assert not created_again
    with pytest.raises(AlreadyExists):
        await storage.add_user("X@new.example", HASH)
    with pytest.raises(ValueError):
        await storage.add_user("not-an-address", HASH, create_domain=True)


async def test_get_user_set_password_set_enabled(storage: Storage, user: User) -> None:
    assert await storage.get_user("ALICE@example.org") == user
    assert await storage.get_user("nobody@example.org") is None
    await storage.set_password("Alice@Example.org", "$argon2id$new")
    await storage.set_enabled("alice@example.org", False)
    changed = await storage.get_user("alice@example.org")
    assert changed is not None
    assert (changed.password_hash, changed.enabled) == ("$argon2id$new", False)
    with pytest.raises(NotFound):
        await storage.set_password("nobody@example.org", HASH)
    with pytest.raises(NotFound):
        await storage.set_enabled("nobody@example.org", True)


async def test_delete_user_removes_mail_and_orphaned_contents(
    storage: Storage, user: User
) -> None:
    other, _ = await storage.add_user("bob@example.org", HASH)
    shared = await storage.store_content(b"Subject: shared\r\n\r\nboth have it\r\n")
    own = await storage.store_content(b"Subject: own\r\n\r\nonly alice\r\n")
    await storage.append(shared, [Delivery(await inbox_id(storage, user)),
                                  Delivery(await inbox_id(storage, other))])
    await storage.append(own, [Delivery(await inbox_id(storage, user))])
    await storage.delete_user("alice@example.org")
    assert await storage.get_user("alice@example.org") is None
    assert await storage.list_mailboxes(user.id) == []
    with pytest.raises(NotFound):
        await storage.read_content(own.sha256)
    assert await storage.read_content(shared.sha256) == b"Subject: shared\r\n\r\nboth have it\r\n"
    with pytest.raises(NotFound):
        await storage.delete_user("alice@example.org")


async def test_list_users_and_usage(storage: Storage, user: User) -> None:
    await storage.add_user("zed@example.org", HASH, quota_bytes=5)
    content = await storage.store_content(b"x" * 100)
    inbox = await inbox_id(storage, user)
    await storage.append(content, [Delivery(inbox), Delivery(inbox)])
    usages = await storage.list_users()
    assert [u.address for u in usages] == ["alice@example.org", "zed@example.org"]
    assert (usages[0].message_count, usages[0].bytes_used) == (2, 200)
    assert (usages[1].message_count, usages[1].bytes_used, usages[1].quota_bytes) == (0, 0, 5)
    assert await storage.usage(user.id) == (2, 200)


async def test_lookup_recipient_reads_domain_user_inbox_and_usage(
        storage: Storage, user: User) -> None:
    assert await storage.lookup_recipient("bob@elsewhere.example") is None
    assert await storage.lookup_recipient("nobody@example.org") == RecipientLookup()
    await storage.add_user("zed@example.org", HASH, quota_bytes=5000)
    zed = await storage.get_user("zed@example.org")
    assert zed is not None
    content = await storage.store_content(b"x" * 100)
    await storage.append(content, [Delivery(await inbox_id(storage, zed))])
    found = await storage.lookup_recipient("Zed@Example.ORG")
    assert found == RecipientLookup(
        user_id=zed.id, address="zed@example.org", inbox_id=await inbox_id(storage, zed),
        quota_bytes=5000, used_bytes=100,
    )
    assert found.used_bytes == (await storage.usage(zed.id))[1]
    plain = await storage.lookup_recipient("alice@example.org")
    assert plain is not None and (plain.user_id, plain.quota_bytes) == (user.id, 0)


async def test_mailboxes_create_get(storage: Storage, user: User) -> None:
    inbox = await storage.get_mailbox(user.id, "inbox")
    assert inbox is not None and inbox.name == "INBOX"
    assert await storage.get_mailbox(user.id, "sent") is None  # only INBOX ignores case
    made = await storage.create_mailbox(user.id, "Lists/python", "\\Flagged")
    assert made.special_use == "\\Flagged"
    assert await storage.get_mailbox(user.id, "Lists/python") == made
    with pytest.raises(AlreadyExists):
        await storage.create_mailbox(user.id, "Lists/python")
    with pytest.raises(AlreadyExists):
        await storage.create_mailbox(user.id, "Inbox")
    with pytest.raises(NotFound):
        await storage.create_mailbox(user.id + 1000, "x")
