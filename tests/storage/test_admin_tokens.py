"""Admin tokens and storage statistics (schema 4) on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from mailwing.services.admin_tokens import TokenError, TokenService, hash_token


async def test_create_verify_touch_revoke(store: Any) -> None:
    clock = [1000.0]
    tokens = TokenService(store, clock=lambda: clock[0])
    secret, record = await tokens.create("ci-bot")
    assert secret.startswith("mwa_") and len(secret) > 40
    assert record.token_hash == hash_token(secret) != secret
    assert record.created_at == 1000.0 and record.last_used_at is None
    with pytest.raises(TokenError, match="exists already"):
        await tokens.create("ci-bot")
    with pytest.raises(TokenError, match="not a token name"):
        await tokens.create("bad name")

    clock[0] = 2000.0
    found = await tokens.verify(secret)
    assert found is not None and found.name == "ci-bot"
    [listed] = await tokens.list()
    assert listed.last_used_at == 2000.0
    clock[0] = 2030.0  # within a minute: no second write
    await tokens.verify(secret)
    assert (await tokens.list())[0].last_used_at == 2000.0
    assert await tokens.verify(secret + "x") is None
    assert await tokens.verify("not-even-a-token") is None
    assert (await tokens.by_id(record.id)) is not None

    await tokens.revoke("ci-bot")
    assert await tokens.verify(secret) is None
    assert await tokens.by_id(record.id) is None
    with pytest.raises(TokenError, match="no token named"):
        await tokens.revoke("ci-bot")


async def test_storage_stats(store: Any) -> None:
    stats = await store.storage_stats()
    assert stats.backend in ("sqlite", "postgresql")
    assert stats.database_bytes > 0 and stats.contents == 0 and stats.content_bytes == 0
    await store.store_content(b"Subject: x\r\n\r\nhello\r\n")  # not linked: not counted
    user, _ = await store.add_user("a@example.org", "h", create_domain=True)
    content = await store.store_content(b"Subject: y\r\n\r\nhello there\r\n")
    box = await store.get_mailbox(user.id, "INBOX")
    from mailwing.storage.interface import Delivery

    await store.append(content, [Delivery(box.id)])
    stats = await store.storage_stats()
    assert stats.contents == 1 and stats.content_bytes == content.size
