"""Cost of one quota check: the running usage counter (schema 5) against a sum over the mail.

Why: every APPEND, COPY and SMTP delivery to a user with a quota asks for the user's usage.
Storage keeps ``users.used_bytes``/``used_messages`` up to date in the transactions that add
or remove mail, so the check reads one row; before, it summed the sizes of every message.
This fills one mailbox with ``--messages`` messages and times both ways.

    .venv/bin/python benchmarks/quota_usage.py --url sqlite:////tmp/q/m.db --data /tmp/q
    .venv/bin/python benchmarks/quota_usage.py --url postgresql://postgres@127.0.0.1/qbench
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mailwing.storage import Delivery, open_storage
from mailwing.storage.steps import Script, q

_SUM = ("SELECT count(m.id), CAST(coalesce(sum(c.size), 0) AS BIGINT) FROM users u"
        " LEFT JOIN mailboxes b ON b.user_id = u.id LEFT JOIN mail m ON m.mailbox_id = b.id"
        " LEFT JOIN contents c ON c.sha256 = m.content_sha256 WHERE u.id = $1")


def _summed(user_id: int) -> Script[tuple[int, int]]:
    rows = yield q(_SUM, user_id)
    return int(rows[0][0]), int(rows[0][1])


async def _time(name: str, check: Callable[[], Awaitable[Any]], rounds: int) -> None:
    await check()
    start = time.perf_counter()
    for _ in range(rounds):
        result = await check()
    per = 1e3 * (time.perf_counter() - start) / rounds
    print(f"{name:8} {result}  {per:.3f} ms per check")


async def main(url: str, data: Path, messages: int, rounds: int) -> None:
    storage = await open_storage(url, data_dir=data)
    await storage.upgrade()
    user, _ = await storage.add_user("quota-bench@example.org", "$argon2id$x",
                                     create_domain=True)
    box = await storage.get_mailbox(user.id, "INBOX")
    assert box is not None
    for start in range(0, messages, 100):
        items = []
        for i in range(start, min(start + 100, messages)):
            content = await storage.store_content(b"Subject: %d\r\n\r\n" % i + b"x" * 2000)
            items.append((content, Delivery(box.id)))
        await storage.append_many(items)
    await _time("counter", lambda: storage.usage(user.id), rounds)
    await _time("sum", lambda: storage._read(_summed(user.id)), rounds)  # type: ignore[attr-defined]
    await storage.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: SQLite in a temp folder)")
    parser.add_argument("--data", type=Path, help="data folder (default: a temp folder)")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        url = args.url or f"sqlite:///{data / 'bench.db'}"
        asyncio.run(main(url, data, args.messages, args.rounds))
