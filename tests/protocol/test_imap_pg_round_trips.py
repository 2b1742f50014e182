"""Statements an IMAP session sends to PostgreSQL, with the session in-process over real
sockets on a real PostgreSQL storage (issue #9: PostgreSQL >= 0.8x SQLite; every statement is
a round trip and a backend's wake-up on the same cores as the workers).

Pinned here, for a mailbox whose listing the process kept: a SELECT is one statement, which
checks that the mailbox still has the name and reads its ``\\Recent`` claim, row and changes
(its change mark needs no sync on the LISTEN connection, and no catch-up follows it); a FETCH
after it is the LISTEN connection's sync alone (nothing changed: no catch-up query); a STORE
that changes nothing in a mailbox where nothing changed is that sync and the STORE's read,
without a catch-up.
"""

from __future__ import annotations

import asyncio
import imaplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mailwing.config import Settings
from mailwing.server.connection import Connection
from mailwing.server.imap_session import handle_imap
from mailwing.services.auth import Authenticator
from mailwing.services.context import AppContext
from mailwing.services.passwords import hash_password
from mailwing.storage import Delivery, open_storage

_METHODS = ("execute", "fetch", "fetchval", "fetchrow", "executemany")
SYNC = "SELECT 1"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement asyncpg sends, whitespace collapsed."""
    log: list[str] = []
    for name in _METHODS:
        real = getattr(asyncpg.connection.Connection, name)

        def wrap(real: Any) -> Any:
            async def call(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
                log.append(" ".join(query.split()))
                return await real(self, query, *args, **kwargs)
            return call

        monkeypatch.setattr(asyncpg.connection.Connection, name, wrap(real))
    return log


@pytest.fixture
async def port(pg_database_url: str, tmp_path: Path) -> AsyncIterator[int]:
    storage = await open_storage(pg_database_url, data_dir=tmp_path / "data")
    await storage.upgrade()
    user, _ = await storage.add_user("q@example.test", hash_password("pw"), create_domain=True)
    box = await storage.get_mailbox(user.id, "INBOX")
    assert box is not None
    for i in range(5):
        info = await storage.store_content(f"Subject: number {i}\r\n\r\nbody {i}\r\n".encode())
        await storage.append(info, [Delivery(box.id)])
    settings = Settings()
    settings.auth.allow_plaintext = True
    ctx = AppContext(settings, storage, Authenticator(storage, settings.auth))

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conn = Connection(r, w, listener="imap", ssl_context=None, idle_timeout=60)
        try:
            await handle_imap(ctx, conn)
        finally:
            await conn.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await storage.close()


async def test_issue_session_statements(port: int, sent: list[str]) -> None:
    def client() -> dict[str, list[str]]:
        c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        c.login("q@example.test", "pw")
        c.select("INBOX")  # lists the mailbox; the process keeps the listing
        c.store("1:*", "+FLAGS", "(\\Seen)")
        c.close()
        seen: dict[str, list[str]] = {}

        def step(name: str, call: Callable[[], Any]) -> Any:
            sent.clear()
            result = call()
            seen[name] = list(sent)
            return result

        typ, data = step("SELECT", lambda: c.select("INBOX"))
        assert typ == "OK" and data == [b"5"]
        step("FETCH", lambda: c.fetch("1:*", "(FLAGS RFC822.SIZE)"))
        typ, flags = step("STORE", lambda: c.store("1:*", "+FLAGS", "(\\Seen)"))
        assert typ == "OK" and len(flags) == 5 and all(b"\\Seen" in f for f in flags)
        c.logout()
        return seen

    seen = await asyncio.to_thread(client)
    [select] = seen["SELECT"]  # name check, claim's read, row, changes: one statement
    assert "WITH b AS MATERIALIZED" in select and "x.name = $4" in select
    assert seen["FETCH"] == [SYNC]
    store = seen["STORE"]
    assert store[0] == SYNC and len(store) == 2, store  # the sync and the STORE's read


async def test_select_by_a_remembered_name_follows_renames(port: int, sent: list[str]) -> None:
    """The SELECT that skips the lookup by name falls back to it when the mailbox last
    listed under the name has another name now, or another mailbox has it."""
    def client() -> list[tuple[str, list[Any]]]:
        c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        c.login("q@example.test", "pw")
        out = []
        assert c.create("Work")[0] == "OK"
        c.select("INBOX")
        assert c.copy("1:2", "Work")[0] == "OK"
        out.append(c.select("Work"))  # listed: remembered as "Work"
        out.append(c.select("Work"))  # by the remembered name
        assert c.rename("Work", "Play")[0] == "OK"
        out.append(c.select("Work"))
        out.append(c.select("Play"))
        assert c.create("Work")[0] == "OK"
        out.append(c.select("Work"))
        c.logout()
        return out

    answers = await asyncio.to_thread(client)
    assert answers == [("OK", [b"2"]), ("OK", [b"2"]), ("NO", answers[2][1]),
                       ("OK", [b"2"]), ("OK", [b"0"])]
