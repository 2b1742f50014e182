"""How many storage calls an IMAP FETCH or STORE costs, with the session in-process over real
sockets and a real SQLite storage wrapped to count calls (no mocks: every call goes through).

A ``FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)`` over many messages must not cost a listing or
a metadata query per message: the selected view holds the entries, and ENVELOPE comes from
the content cache (computed once per content, then kept in a process-wide LRU). A STORE
or an APPEND to the selected mailbox and the catch-up with other sessions after it are one
storage call (one transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailwing.config import Settings
from mailwing.server.connection import Connection
from mailwing.server.imap_session import handle_imap
from mailwing.services.auth import Authenticator
from mailwing.services.context import AppContext
from mailwing.services.passwords import hash_password
from mailwing.storage import Delivery, Storage, open_storage

N = 300


class CountingStorage:
    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if callable(value):
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return value(*args, **kwargs)
            return counted
        return value


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, CountingStorage]]:
    real = await open_storage(f"sqlite:///{tmp_path / 'm.db'}", data_dir=tmp_path)
    await real.upgrade()
    user, _ = await real.add_user("q@example.test", hash_password("pw"), create_domain=True)
    box = await real.get_mailbox(user.id, "INBOX")
    for i in range(N):
        info = await real.store_content(
            f"From: n{i}@example.test\r\nSubject: number {i}\r\n\r\nbody {i}\r\n".encode())
        await real.append(info, [Delivery(box.id)])
    counting = CountingStorage(real)
    settings = Settings()
    settings.auth.allow_plaintext = True
    ctx = AppContext(settings, counting, Authenticator(real, settings.auth))  # type: ignore[arg-type]

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conn = Connection(r, w, listener="imap", ssl_context=None, idle_timeout=60)
        try:
            await handle_imap(ctx, conn)
        finally:
            await conn.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1]), counting
    server.close()
    await real.close()


async def test_fetch_all_envelopes_costs_no_query_per_message(
        served: tuple[int, CountingStorage]) -> None:
    port, storage = served

    def client() -> tuple[list[Any], list[Any]]:
        c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        c.login("q@example.test", "pw")
        c.select("INBOX")
        first = c.fetch("1:*", "(FLAGS ENVELOPE RFC822.SIZE)")[1]
        storage.calls.clear()
        second = c.fetch("1:*", "(FLAGS ENVELOPE RFC822.SIZE)")[1]
        c.logout()
        return first, second

    first, second = await asyncio.to_thread(client)
    assert len(first) == len(second) == N and first == second
    assert b'"number 7"' in second[7]
    # the second FETCH: no listing, no per-message lookups; one change check at the end
    assert storage.calls["list_mail"] == 0
    assert storage.calls["get_content_cache"] == 0 and storage.calls["read_content"] == 0
    assert sum(storage.calls.values()) <= 2, storage.calls


async def test_fetch_all_bodies_reads_contents_a_window_at_a_time(
        served: tuple[int, CountingStorage]) -> None:
    """FETCH 1:* BODY.PEEK[] reads the small contents with read_contents, a bounded window
    per call (one query each on PostgreSQL), not one read per message, and every body is
    still the message's own."""
    port, storage = served

    def client() -> list[Any]:
        c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        c.login("q@example.test", "pw")
        c.select("INBOX")
        storage.calls.clear()
        bodies = c.fetch("1:*", "(BODY.PEEK[])")[1]
        c.logout()
        return [b for b in bodies if isinstance(b, tuple)]

    bodies = await asyncio.to_thread(client)
    assert len(bodies) == N
    for i, (_, body) in enumerate(bodies):
        expected = f"From: n{i}@example.test\r\nSubject: number {i}\r\n\r\nbody {i}\r\n"
        assert body == expected.encode()
    assert storage.calls["read_content"] == 0
    assert 1 <= storage.calls["read_contents"] <= N // 100 + 1, storage.calls


async def test_store_and_its_catch_up_are_one_storage_call(
        served: tuple[int, CountingStorage]) -> None:
    """STORE takes the catch-up that follows every command in its own transaction
    (``set_flags_with_changes``): no separate ``mail_changes``, and what another session
    changed meanwhile is still reported with the STORE's answer."""
    port, storage = served

    def client() -> tuple[list[Any], list[Any]]:
        a = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        b = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        for c in (a, b):
            c.login("q@example.test", "pw")
            c.select("INBOX")
        b.store("2", "+FLAGS", "($Other)")
        storage.calls.clear()
        stored = a.store("1", "+FLAGS", "(\\Seen)")[1]
        calls = dict(storage.calls)
        again = a.store("1", "+FLAGS", "(\\Seen)")[1]  # nothing to change: a read only
        for c in (a, b):
            c.logout()
        return stored, [calls, again]

    stored, (calls, again) = await asyncio.to_thread(client)
    assert sorted(stored) == [b"1 (FLAGS (\\Recent \\Seen))", b"2 (UID 2 FLAGS ($Other \\Recent))"]
    assert again == [b"1 (FLAGS (\\Recent \\Seen))"]
    assert calls.get("set_flags_with_changes") == 1, calls
    assert "mail_changes" not in calls and "set_flags" not in calls, calls


async def test_append_to_the_selected_mailbox_and_its_catch_up_are_one_write(
        served: tuple[int, CountingStorage]) -> None:
    """APPEND into the selected mailbox takes the catch-up and the \\Recent claim of the
    new message in its own transaction (``append_many_with_changes``): the EXISTS and
    RECENT of the new mail come with it, and no separate catch-up or claim follows."""
    port, storage = served

    def client() -> tuple[dict[str, int], Any, Any, Any]:
        a = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        a.login("q@example.test", "pw")
        a.select("INBOX")
        a.response("EXISTS"), a.response("RECENT")  # forget SELECT's
        storage.calls.clear()
        a.append("INBOX", "", None, b"Subject: appended\r\n\r\nbody\r\n")
        calls = dict(storage.calls)
        exists, recent = a.response("EXISTS")[1], a.response("RECENT")[1]
        flags = a.fetch(str(N + 1), "(FLAGS)")[1]
        a.logout()
        return calls, exists, recent, flags

    calls, exists, recent, flags = await asyncio.to_thread(client)
    assert exists == [str(N + 1).encode()] and recent == [str(N + 1).encode()]
    assert flags == [f"{N + 1} (FLAGS (\\Recent))".encode()]
    assert calls.get("append_many_with_changes") == 1, calls
    assert not {"append_many", "mail_changes", "catch_up", "claim_recent",
                "get_mailbox"} & set(calls), calls  # the selected INBOX needs no look-up


async def test_append_to_a_selected_inbox_deleted_and_made_again_goes_to_the_new_one(
        served: tuple[int, CountingStorage]) -> None:
    """The look-up an APPEND to the selected INBOX skips is made when the INBOX has gone
    (an administrator deleted it) and a new one exists: the message lands there, as it did
    with the look-up first; the session then ends, its mailbox gone."""
    port, storage = served
    real: Any = storage._inner
    user = await real.get_user("q@example.test")
    old = await real.get_mailbox(user.id, "INBOX")

    def client() -> None:
        a = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        a.login("q@example.test", "pw")
        a.select("INBOX")
        asyncio.run_coroutine_threadsafe(remake(), loop).result()
        with contextlib.suppress(imaplib.IMAP4.abort):  # BYE: the selected mailbox is gone
            a.append("INBOX", "", None, b"Subject: after\r\n\r\nbody\r\n")
        a.shutdown()

    async def remake() -> None:
        await real.delete_mailbox(user.id, "INBOX")
        await real.create_mailbox(user.id, "INBOX")

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(client)
    new = await real.get_mailbox(user.id, "INBOX")
    assert new.id != old.id
    assert len(await real.list_mail(new.id)) == 1


async def test_expunge_and_its_catch_up_are_one_storage_call(
        served: tuple[int, CountingStorage]) -> None:
    """EXPUNGE catches up first (a \\Deleted set by another session counts) and takes that
    catch-up, the expunge and the \\Recent claim of new mail in one storage call
    (``expunge_with_changes``). New mail found by the catch-up is not expunged, even with
    \\Deleted: it was not yet in the session's numbering, and it is announced after."""
    port, storage = served

    def client() -> tuple[dict[str, int], Any, Any, Any, Any]:
        a = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        b = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        for c in (a, b):
            c.login("q@example.test", "pw")
            c.select("INBOX")
        a.response("EXISTS")  # forget SELECT's
        a.store("3", "+FLAGS", "(\\Deleted)")
        b.store("5", "+FLAGS", "(\\Deleted)")
        b.store("3", "-FLAGS", "(\\Deleted)")  # a still thinks 3 is \Deleted: it stays
        b.store("7", "+FLAGS", "(\\Deleted)")
        b.append("INBOX", "(\\Deleted)", None, b"Subject: new\r\n\r\nbody\r\n")
        storage.calls.clear()
        gone = a.expunge()[1]
        calls = dict(storage.calls)
        exists = a.response("EXISTS")[1]
        left = a.uid("SEARCH", "ALL")[1][0].split()
        deleted = a.uid("SEARCH", "DELETED")[1][0].split()
        for c in (a, b):
            c.logout()
        return calls, gone, exists, left, deleted

    calls, gone, exists, left, deleted = await asyncio.to_thread(client)
    assert gone == [b"5", b"6"]  # UIDs 5 and 7: 7 is number 6 once 5 is gone
    assert exists == [str(N - 1).encode()]
    assert [int(u) for u in left] == [u for u in range(1, N + 2) if u not in (5, 7)]
    assert deleted == [str(N + 1).encode()]
    assert calls.get("expunge_with_changes") == 1, calls
    assert not {"expunge", "mail_changes", "catch_up", "claim_recent"} & set(calls), calls
