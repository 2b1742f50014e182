"""CPU per SMTP-style delivery on SQLite as the database grows, in-process and uncontended.

Why (issue #9): in two of three ten-minute SMTP runs at 50 clients ("Flat over time") the
server's CPU per message rose by 15-16 % from minute 1 to minute 10, while the database grew
to a gigabyte and more. This separates one possible cause, the storage path costing more on a
bigger database (deeper B-trees, pages no longer in SQLite's cache), from the rest of the
server. It delivers with :func:`mailwing.services.delivery.deliver_local`, the call the SMTP
and LMTP sessions make (trace fields, content, append with quota): the SMTP benchmark's
4,096-octet message (``smtp_load.make_body``), each with its own Message-ID, to 50 users. It
times ``--sample`` single deliveries on the empty database, then again after every
``--step`` messages (added ``--burst`` at a time, concurrently, so that they share commits),
up to ``--messages``. It prints the median wall time of a delivery and this process's CPU per
delivery (the storage threads included).

This machine's speed drifts by 20 % and more within minutes. To compare two trees or two
settings, start them at the same time (the same drift weighs on both), e.g. the code before a
change beside the code after it::

    .venv/bin/python benchmarks/growth_bench.py &
    PYTHONPATH=OTHER/src .venv/bin/python benchmarks/growth_bench.py &
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from smtp_load import make_body

from mailwing.services.delivery import deliver_local
from mailwing.storage import Storage, open_storage

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"  # never checked: no login here
USERS = [f"user{n}@bench.test" for n in range(50)]
#: the SMTP benchmark's 4,096-octet message; each delivery gets its own Message-ID, as it
#: does in that benchmark's load
_BODY, _UNIQUE = make_body(4096)


async def _deliver(store: Storage) -> None:
    await deliver_local(store, random.choice(USERS),
                        _BODY.replace(_UNIQUE, uuid.uuid4().hex.encode(), 1),
                        return_path="load@sender.test", hostname="mx.bench.test")


async def _sample(store: Storage, count: int) -> tuple[float, float]:
    """Median wall ms of ``count`` deliveries one after another, and CPU ms per delivery."""
    cpu, times = time.process_time(), []
    for _ in range(count):
        start = time.perf_counter()
        await _deliver(store)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, (time.process_time() - cpu) * 1000 / count


async def run(messages: int, step: int, burst: int, sample: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="mailwing-growth-bench-"))
    database = root / "mail.db"
    store = await open_storage(f"sqlite:///{database}", data_dir=root / "data")
    try:
        await store.upgrade()
        for address in USERS:
            await store.add_user(address, HASH, create_domain=True)
        done = 0
        started = time.monotonic()
        while True:
            wall, cpu = await _sample(store, sample)
            print(f"{done:>9} messages, {database.stat().st_size >> 20:>5} MiB:"
                  f" median {wall:.3f} ms, CPU {cpu:.3f} ms per delivery"
                  f" ({time.monotonic() - started:.0f} s)", flush=True)
            if done >= messages:
                break
            target = min(messages, done + step)
            while done < target:
                now = min(burst, target - done)
                await asyncio.gather(*(_deliver(store) for _ in range(now)))
                done += now
    finally:
        await store.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=200_000, help="messages in the end")
    p.add_argument("--step", type=int, default=50_000, help="messages between samples")
    p.add_argument("--burst", type=int, default=500, help="deliveries added at once")
    p.add_argument("--sample", type=int, default=2000, help="deliveries timed per sample")
    args = p.parse_args()
    asyncio.run(run(args.messages, args.step, args.burst, args.sample))


if __name__ == "__main__":
    main()
