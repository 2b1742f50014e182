"""Local delivery (services.delivery) on each storage backend."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailwing.services.delivery import (
    EmptyMessage,
    QuotaExceeded,
    UnknownMailbox,
    UnknownRecipient,
    deliver_local,
    deliver_to_many,
    trace_headers,
)

MSG = b"From: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def test_trace_headers_prepended(store: Any) -> None:
    await store.add_user("Bob@Example.org", "$argon2id$x", create_domain=True)
    entry = await deliver_local(store, "BOB@example.org", MSG, return_path="a@example.net",
                                hostname="mx.test")
    stored = await store.read_content(entry.content.sha256)
    assert stored == (b"Return-Path: <a@example.net>\r\nDelivered-To: bob@example.org\r\n"
                      + MSG)
    user = await store.get_user("bob@example.org")
    inbox = await store.get_mailbox(user.id, "INBOX")
    assert inbox is not None and inbox.id == entry.mailbox_id
    assert entry.uid >= 1


def test_return_path_forms() -> None:
    assert trace_headers("b@x", None, "h").startswith(b"Return-Path: <>\r\n")
    assert trace_headers("b@x", "<>", "h").startswith(b"Return-Path: <>\r\n")
    assert trace_headers("b@x", "root", "mx.test").startswith(b"Return-Path: <root@mx.test>")
    injected = trace_headers("b@x", "a@x\r\nBcc: evil@x", "h")
    assert injected.count(b"\r\n") == 2


async def test_streamed_into_named_mailbox(store: Any) -> None:
    user, _ = await store.add_user("bob@example.org", "$argon2id$x", create_domain=True)
    body = b"Subject: big\r\n\r\n" + b"x" * 1_000_000 + b"\r\n"
    entry = await deliver_local(store, "bob@example.org", chunks(body, 65536),
                                mailbox="Archive", hostname="mx.test")
    archive = await store.get_mailbox(user.id, "Archive")
    assert entry.mailbox_id == archive.id
    assert entry.content.size == len(body) + len(trace_headers("bob@example.org", None, "h"))


async def test_memory_stays_bounded(sqlite_store: Any) -> None:
    """A 30 MB message streamed in 64 KiB chunks must not be held whole in memory."""
    await sqlite_store.add_user("big@example.org", "$argon2id$x", create_domain=True)
    piece = b"y" * 65534 + b"\r\n"

    async def body() -> AsyncIterator[bytes]:
        yield b"Subject: large\r\n\r\n"
        for _ in range(480):
            yield piece

    tracemalloc.start()
    try:
        entry = await deliver_local(sqlite_store, "big@example.org", body(), hostname="h")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert entry.content.size > 30_000_000
    assert peak < 8_000_000


async def test_unknown_user_and_mailbox(store: Any) -> None:
    with pytest.raises(UnknownRecipient, match=r"nobody@example\.org"):
        await deliver_local(store, "nobody@example.org", MSG, hostname="mx.test")
    await store.add_user("bob@example.org", "$argon2id$x", create_domain=True)
    with pytest.raises(UnknownMailbox):
        await deliver_local(store, "bob@example.org", MSG, mailbox="Nope", hostname="mx.test")


async def test_empty_message(store: Any) -> None:
    await store.add_user("bob@example.org", "$argon2id$x", create_domain=True)
    with pytest.raises(EmptyMessage):
        await deliver_local(store, "bob@example.org", b"", hostname="mx.test")
    user = await store.get_user("bob@example.org")
    assert await store.usage(user.id) == (0, 0)


async def test_quota(store: Any) -> None:
    user, _ = await store.add_user("bob@example.org", "$argon2id$x", quota_bytes=500,
                                   create_domain=True)
    await deliver_local(store, "bob@example.org", MSG, hostname="mx.test")
    with pytest.raises(QuotaExceeded):
        await deliver_local(store, "bob@example.org", chunks(b"y" * 1000, 100),
                            hostname="mx.test")
    count, _ = await store.usage(user.id)
    assert count == 1


async def test_deliver_to_many_reports_each(store: Any) -> None:
    await store.add_user("a@example.org", "$argon2id$x", create_domain=True)
    await store.add_user("b@example.org", "$argon2id$x")
    results = await deliver_to_many(store, ["a@example.org", "zz@example.org",
                                            "b@example.org"], MSG, hostname="mx.test")
    assert [r.entry is not None for r in results] == [True, False, True]
    assert isinstance(results[1].error, UnknownRecipient)
