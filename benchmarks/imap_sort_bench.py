"""How long SORT, THREAD and ESEARCH take on a large mailbox (RFC 5256, RFC 4731).

Run ``.venv/bin/python benchmarks/imap_sort_bench.py --help``. A mailbox of ``--messages``
(10,000) distinct messages (50 subjects with ``Re:``/``[list]`` decorations, 200 senders,
dates spread over a year, reply chains through References) is filled through mailwing's own
storage code; the server is started and each command below is timed ``--rounds`` times
(median and worst, milliseconds, until the tagged OK). The first THREAD REFERENCES of the
process reads every message's header block (cold); the next ones use the process cache.
Everything started here (server, temp folder, a PostgreSQL database) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imap_resync_bench import PASSWORD, USER, Client, ImapMailwing
from pop3_bench import postgres_database

COMMANDS = (
    "THREAD REFERENCES UTF-8 ALL",  # first: cold header reads
    "THREAD REFERENCES UTF-8 ALL",
    "SEARCH RETURN (COUNT MIN MAX) ALL",
    "SEARCH RETURN (ALL) SUBJECT topic",
    "SORT (DATE) UTF-8 ALL",
    "SORT (SUBJECT) UTF-8 ALL",
    "SORT (FROM REVERSE ARRIVAL) UTF-8 ALL",
    "SORT RETURN (COUNT MIN) (SIZE) UTF-8 SINCE 1-Jun-2025",
    "THREAD ORDEREDSUBJECT UTF-8 ALL",
)


def message(n: int) -> bytes:
    topic = n % 50
    prefix = ("", "Re: ", "[list] Re: ", "Fwd: ")[n % 4]
    day = 1 + n % 28
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
             "Dec")[n % 12]
    refs = f"References: <m{n - 50}@bench.test>\r\n" if n >= 50 else ""
    return (f"From: Sender {n % 200} <s{n % 200}@bench.test>\r\nTo: {USER}\r\n"
            f"Subject: {prefix}topic {topic}\r\n"
            f"Date: Mon, {day:02d} {month} 2025 {n % 24:02d}:00:00 +0000\r\n"
            f"Message-ID: <m{n}@bench.test>\r\n{refs}\r\n"
            f"body {n}\r\n" + "x" * (n % 500) + "\r\n").encode()


async def fill(url: str, data_dir: Path, count: int) -> None:
    from mailwing.services.passwords import hash_password
    from mailwing.storage import Delivery, open_storage

    storage = await open_storage(url, data_dir=data_dir)
    try:
        user, _ = await storage.add_user(USER, hash_password(PASSWORD), create_domain=True)
        box = await storage.get_mailbox(user.id, "INBOX")
        assert box is not None
        for n in range(count):
            content = await storage.store_content(message(n))
            await storage.append(content, [Delivery(box.id)])
    finally:
        await storage.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mailwing-sort-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        if args.backend == "postgresql":
            url = stack.enter_context(postgres_database(args.postgres_url))
        else:
            url = f"sqlite:///{root / 'data' / 'mailwing.db'}"
        server = ImapMailwing(root, url)
        server.write_config(1)
        server.cli("db", "upgrade")
        started = time.perf_counter()
        asyncio.run(fill(url, root / "data", args.messages))
        print(f"filled {args.messages} messages in {time.perf_counter() - started:.1f} s "
              f"({args.backend})")
        server.start(1)
        stack.callback(server.stop)
        client = Client(server.imap_port)
        client.command("SELECT INBOX")
        print(f"{'command':<55} {'median ms':>10} {'worst ms':>9}")
        first = True
        for text in COMMANDS:
            rounds = 1 if first else args.rounds
            times = [client.command(text)[2] * 1000 for _ in range(rounds)]
            label = text + (" (cold)" if first else "")
            print(f"{label:<55} {statistics.median(times):>10.1f} {max(times):>9.1f}")
            first = False
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
