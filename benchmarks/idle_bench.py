"""Memory per idle IMAP connection: one mailwing worker holding ``--connections`` of them.

Run ``make bench-idle`` or ``.venv/bin/python benchmarks/idle_bench.py --help``.

What is measured: ``mailwing serve`` with ``server.workers = 1`` (the worker is the serving
process itself) and the IMAP listener only. The resident set size (``VmRSS`` of
``/proc/PID/status``) is read after a few connections have come and gone (imports, the event
loop, storage warmed up), then after ``--connections`` connections are opened and left idle,
in two states: right after the greeting (not authenticated), and after ``LOGIN`` and
``SELECT INBOX`` of a 50-message mailbox (what an idle mail client holds). The figure is the
RSS growth divided by the number of connections; the target of issue #9 is <= 50 KB.
Beside it, for scale, the same numbers for Dovecot's ``imap`` processes are NOT comparable
(a process per connection) and are not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imap_bench import DOMAIN, PASSWORD, MailwingImap, make_message

USER = f"idle@{DOMAIN}"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_idle(port: int, count: int, login: bool) -> list[asyncio.StreamWriter]:
    writers: list[asyncio.StreamWriter] = []

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()  # greeting
        if login:
            writer.write(f'a LOGIN "{USER}" "{PASSWORD}"\r\nb SELECT INBOX\r\n'.encode())
            while not (await reader.readline()).startswith(b"b "):
                pass
        writers.append(writer)
        reader_keep.append(reader)

    reader_keep: list[asyncio.StreamReader] = []
    for start in range(0, count, 100):  # in steps, below any accept backlog
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100))))
    return writers


async def measure(pid: int, port: int, count: int, login: bool, settle: float) -> float:
    warm = await open_idle(port, 20, login)
    for w in warm:
        w.close()
    await asyncio.sleep(settle)
    before = rss_kb(pid)
    writers = await open_idle(port, count, login)
    await asyncio.sleep(settle)
    after = rss_kb(pid)
    for w in writers:
        w.close()
        with contextlib.suppress(Exception):
            await w.wait_closed()
    per = (after - before) / count
    state = "after LOGIN + SELECT INBOX" if login else "after the greeting"
    print(f"{count} idle IMAP connections {state}: RSS {before} kB -> {after} kB, "
          f"{per:.1f} kB per connection (target <= 50 kB: {'met' if per <= 50 else 'NOT met'})",
          flush=True)
    return per


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds to wait before reading RSS")
    ap.add_argument("--backend", choices=("sqlite",), default="sqlite")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections * 2 + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    root = Path(tempfile.mkdtemp(prefix="mailwing-idle-bench-"))
    mw = MailwingImap(root / "mailwing", f"sqlite:///{root / 'mailwing' / 'data' / 'm.db'}")
    try:
        (root / "mailwing" / "data").mkdir(parents=True)
        import random

        rng = random.Random(1)
        mw.populate({USER: [make_message(rng, USER, n + 1, 4096) for n in range(50)]})
        mw.server_extra = f"max_connections = {need}\n"
        for login in (False, True):  # a fresh process each: freed memory would be reused
            mw.start(1)
            assert mw.proc is not None
            time.sleep(1)
            asyncio.run(measure(mw.proc.pid, mw.port, args.connections, login, args.settle))
            mw.stop()
    finally:
        mw.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
