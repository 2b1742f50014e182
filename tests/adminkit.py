"""Helpers for the admin listener tests: a real ``mailwing serve`` with the admin port, a
token made by the CLI, an HTTP client, and direct storage access to prepare queue rows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import open_test_storage
from tests.support import MailwingServer

ALICE, PASSWORD = "alice@example.org", "alice-pw-1"

#: outbound off: nothing picks up the queue rows a test puts there itself
BASE_CONFIG = """
[outbound]
enabled = false
"""


def start_admin(factory: type[MailwingServer], root: Path, url: str = "",
                enable: tuple[str, ...] = ("admin", "imap", "submission", "smtp"),
                extra: str = "") -> tuple[MailwingServer, str]:
    srv = factory(root=root, database_url=url, enable=enable, extra_config=BASE_CONFIG + extra)
    srv.start()
    token = srv.cli("admin", "token", "create", "tests").stdout.decode().strip()
    return srv, token


def client(srv: MailwingServer, token: str | None = None, **kwargs: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{srv.ports['admin']}", headers=headers,
                        timeout=30, **kwargs)


def message(subject: str, body: str = "hello", html: str | None = None) -> bytes:
    head = f"From: Carol <carol@example.net>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n" \
           "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    if html is None:
        return (head + f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()
    return (head + 'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
            f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            f"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
            "--b1--\r\n").encode()


def enqueue(srv: MailwingServer, queue_id: str, recipient: str = "bob@remote.test") -> None:
    """Put a message in the outbound queue (as submission would), straight into storage."""
    from mailwing.storage.interface import Outbound

    async def run() -> None:
        url = srv.database_url or f"sqlite:///{srv.data_dir / 'mailwing.db'}"
        store = await open_test_storage(url, srv.data_dir, upgrade=False)
        try:
            content = await store.store_content(message(f"queued {queue_id}"))
            await store.enqueue(content, Outbound(queue_id, ALICE, (recipient,),
                                                  time.time(), time.time() + 3600))
        finally:
            await store.close()

    asyncio.run(run())
