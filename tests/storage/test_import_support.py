"""What imports rely on, on every backend: ``mailbox_digests`` tells which messages a
mailbox already holds, without reading bodies."""

from __future__ import annotations

from mailwing.model import User
from mailwing.storage import Delivery, Storage
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

