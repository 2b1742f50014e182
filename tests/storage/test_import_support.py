"""The two storage methods imports rely on, on every backend: ``mailbox_digests`` (which
messages a mailbox already holds, without reading bodies) and ``append_many`` (several
appends in one all-or-nothing transaction, in order)."""

from __future__ import annotations

import pytest

from mailwing.model import User
from mailwing.storage import Delivery, NotFound, Storage
from tests.storage.conftest import inbox_id


def msg(n: int) -> bytes:
    return b"Message-ID: <n%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n" % (n, n)


async def test_mailbox_digests(storage: Storage, user: User) -> None:
    inbox = await inbox_id(storage, user)
    other = await inbox_id(storage, user, "Sent")
    first = await storage.store_content(msg(1))
    second = await storage.store_content(b"Subject: no id\r\n\r\nx\r\n")
    await storage.append(first, [Delivery(inbox), Delivery(other)])
    await storage.append(second, [Delivery(inbox)])
    assert await storage.mailbox_digests(inbox) == [
        (first.sha256, "<n1@example.org>", first.crlf_size),
        (second.sha256, None, second.crlf_size)]
    assert await storage.mailbox_digests(other) == [
        (first.sha256, "<n1@example.org>", first.crlf_size)]
    await storage.expunge(inbox, [1])
    assert [d[0] for d in await storage.mailbox_digests(inbox)] == [second.sha256]


async def test_append_many_keeps_order_and_is_all_or_nothing(storage: Storage,
                                                            user: User) -> None:
    inbox = await inbox_id(storage, user)
    contents = [await storage.store_content(msg(n)) for n in range(5)]
    result = await storage.append_many([(c, [Delivery(inbox, frozenset({"\\Seen"}))])
                                        for c in contents])
    assert [r[0].uid for r in result] == [1, 2, 3, 4, 5]
    entries = await storage.list_mail(inbox)
    assert [e.content.sha256 for e in entries] == [c.sha256 for c in contents]
    assert len({e.modseq for e in entries}) == 5
    with pytest.raises(NotFound):
        await storage.append_many([(contents[0], [Delivery(inbox)]),
                                   (contents[1], [Delivery(999_999)])])
    assert len(await storage.list_mail(inbox)) == 5  # the first of the failed batch is gone too
