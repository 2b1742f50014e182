"""Storage calls of an IMAP session on a fresh mailbox and on one with a long history.

Why (issue #9): the imaptest-style mixed load slowed down round after round because a
catch-up read the mailbox's whole expunged history (an ``ORDER BY uid`` that SQLite answered
through the primary key). This times, in-process (on SQLite by default), the calls the mixed
load makes per command: the catch-up after another session's flag change, a STORE with its
catch-up, an APPEND with its catch-up and an EXPUNGE with its catch-up. It times them on a
mailbox of 20 messages, then on the same mailbox grown to 520 messages after ``--cycles``
rounds of 500 appends and 500 expunges. The medians should not grow with the history (they
did: on 520 messages with 8,000 expunged UIDs the catch-up took 0.43 ms, a STORE 0.69 and
an APPEND 1.76, against 0.06, 0.19 and 0.72 since the fix).

Beside the wall-time medians each kind gets its CPU per call: this process's (the storage
layer; on SQLite its database threads too) and, with ``--backend postgresql`` (the same calls
on a throw-away PostgreSQL database), that database's backends' (``cpu_usage.postgres_cpu``),
each summed over the kind's ``--repeat`` calls and divided by them. That tells what one
uncontended call costs PostgreSQL, apart from any lock wait or run-queue time a loaded
machine adds (issue #9: a STORE under the mixed load spent 2.4 ms in the executor, against
0.3 ms when alone). The CPU figures include each loop's helper calls (reading HIGHESTMODSEQ; for
the catch-up, the flag change it learns; for APPEND, storing the content; for EXPUNGE,
listing and flagging), so they are an upper bound for the timed call itself. Backend CPU is
counted in clock ticks (10 ms): use a ``--repeat`` of a few hundred.

    .venv/bin/python benchmarks/history_bench.py [--cycles 16] [--repeat 60]
    .venv/bin/python benchmarks/history_bench.py --backend postgresql --repeat 400
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cpu_usage import postgres_cpu
from pop3_bench import database_name, postgres_database

from mailwing.storage import Delivery, open_storage

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"  # never checked: no login here


async def _median_ms(repeat: int, call: Callable[[int], Awaitable[float | None]],
                     database: str | None = None) -> tuple[float, float, float | None]:
    """``call(i)`` returns its own start time (perf_counter) or None to time all of it.
    The median wall ms of the timed part; this process's CPU ms per call; and with
    ``database``, its PostgreSQL backends' CPU ms per call (both over whole calls)."""
    times = []
    cpu, db = time.process_time(), postgres_cpu(database) if database else 0.0
    for i in range(repeat):
        start = time.perf_counter()
        own = await call(i)
        times.append((time.perf_counter() - (own or start)) * 1000)
    cpu = (time.process_time() - cpu) * 1000 / repeat
    backends = (postgres_cpu(database) - db) * 1000 / repeat if database else None
    return statistics.median(times), cpu, backends


async def run(cycles: int, repeat: int, postgres_url: str | None) -> None:
    """On SQLite in a temporary folder; on the PostgreSQL database ``postgres_url`` if given."""
    root = Path(tempfile.mkdtemp(prefix="mailwing-history-bench-"))
    url = postgres_url or f"sqlite:///{root / 'mail.db'}"
    database = database_name(url)
    store = await open_storage(url, data_dir=root / "data")
    try:
        await store.upgrade()
        user, _ = await store.add_user("a@bench.test", HASH, create_domain=True)
        box = await store.get_mailbox(user.id, "INBOX")
        assert box is not None
        count = 0

        async def add(n: int) -> None:
            nonlocal count
            for _ in range(n):
                count += 1
                content = await store.store_content(b"Subject: %d\r\n\r\nbody\r\n" % count)
                await store.append(content, [Delivery(box.id)])

        async def highest() -> int:
            found = await store.get_mailbox_by_id(box.id)
            assert found is not None
            return found.highestmodseq

        async def measure(label: str) -> None:
            uids = [e.uid for e in await store.list_mail(box.id)]

            async def catch_up(i: int) -> float:
                # one flag change by "another session", then the catch-up that learns it
                top = await highest()
                await store.set_flags(box.id, [uids[i % len(uids)]], [f"$seen{i}"], "add")
                start = time.perf_counter()
                await store.catch_up(box.id, top)
                return start

            async def store_flag(i: int) -> None:
                await store.set_flags_with_changes(
                    box.id, [uids[i % len(uids)]], [f"$kw{i % 5}"], "add",
                    since_modseq=await highest())

            async def append(i: int) -> None:
                content = await store.store_content(b"Subject: a%d\r\n\r\nbody\r\n" % i)
                await store.append_many_with_changes([(content, Delivery(box.id))],
                                                     mailbox_id=box.id,
                                                     since_modseq=await highest())

            async def expunge(i: int) -> float:
                last = (await store.list_mail(box.id))[-1].uid
                await store.set_flags(box.id, [last], ["\\Deleted"], "add")
                top = await highest()
                start = time.perf_counter()
                await store.expunge_with_changes(box.id, [last], highest_known=top,
                                                 since_modseq=top)
                return start

            cells = []
            for name, call in (("catch-up", catch_up), ("STORE", store_flag),
                               ("APPEND", append), ("EXPUNGE", expunge)):
                wall, cpu, backends = await _median_ms(repeat, call, database)
                cell = f"{name} {wall:.3f} (CPU per call: here {cpu:.2f}"
                cell += f", PostgreSQL {backends:.2f})" if backends is not None else ")"
                cells.append(cell)
            print(f"{label:40} median ms: {', '.join(cells)}", flush=True)

        await add(20)
        await measure("20 messages, no expunged UIDs")
        await add(500)  # the mixed load's mailboxes grew to a few hundred messages
        for _ in range(cycles):
            await add(500)
            doomed = [e.uid for e in await store.list_mail(box.id)][-500:]
            await store.set_flags(box.id, doomed, ["\\Deleted"], "add")
            top = await highest()
            await store.expunge_with_changes(box.id, doomed, highest_known=top,
                                             since_modseq=top)
        messages = len(await store.list_mail(box.id))
        await measure(f"{messages} messages, {cycles * 500} expunged UIDs")
    finally:
        await store.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=16,
                   help="rounds of 500 appends and 500 expunges for the long history")
    p.add_argument("--repeat", type=int, default=60, help="calls timed per kind")
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--postgres-url", default=os.environ.get(
        "MAILWING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        url = (stack.enter_context(postgres_database(args.postgres_url))
               if args.backend == "postgresql" else None)
        asyncio.run(run(args.cycles, args.repeat, url))


if __name__ == "__main__":
    main()
