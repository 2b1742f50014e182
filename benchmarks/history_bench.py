"""Storage calls of an IMAP session on a fresh mailbox and on one with a long history.

Why (issue #9): the imaptest-style mixed load slowed down round after round because a
catch-up read the mailbox's whole expunged history (an ``ORDER BY uid`` that SQLite answered
through the primary key). This times, on SQLite and in-process, the calls the mixed load
makes per command: the catch-up after another session's flag change, a STORE with its
catch-up, an APPEND with its catch-up and an EXPUNGE with its catch-up. It times them on a
mailbox of 20 messages, then on the same mailbox grown to 520 messages after ``--cycles``
rounds of 500 appends and 500 expunges. The medians should not grow with the history (they
did: on 520 messages with 8,000 expunged UIDs the catch-up took 0.43 ms, a STORE 0.69 and
an APPEND 1.76, against 0.06, 0.19 and 0.72 since the fix).

    .venv/bin/python benchmarks/history_bench.py [--cycles 16] [--repeat 60]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mailwing.storage import Delivery
from mailwing.storage.sqlite import SqliteStorage

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"  # never checked: no login here


async def _median_ms(repeat: int, call: Callable[[int], Awaitable[float | None]]) -> float:
    """``call(i)`` returns its own start time (perf_counter) or None to time all of it."""
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        own = await call(i)
        times.append((time.perf_counter() - (own or start)) * 1000)
    return statistics.median(times)


async def run(cycles: int, repeat: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="mailwing-history-bench-"))
    store = await SqliteStorage.open(root / "mail.db", root / "data")
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
                cells.append(f"{name} {await _median_ms(repeat, call):.3f}")
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
    args = p.parse_args()
    asyncio.run(run(args.cycles, args.repeat))


if __name__ == "__main__":
    main()
