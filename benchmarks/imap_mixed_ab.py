#!/usr/bin/env python3
"""IMAP mixed-load A/B: two mailwing source trees loaded *at the same time*, CPU per command.

Why: on a shared 2-core machine the worker CPU per command of one run moves by 20 % with
everyone else's load, more than a change of a few percent. Here both trees ("old", e.g. a
``git worktree`` of main, and "new") serve :mod:`imap_mixed`'s load in the same seconds, each
with its own copy of the mail and ``server.workers = 2``, so whatever else runs weighs on
both; each round reports both servers' worker CPU seconds (user + system, SQLite thread
included) per command answered, and their ratio. The median ratio is the figure to quote.

Example: ``PYTHONPATH=src benchmarks/imap_mixed_ab.py --old /work/main/src --new src
--clients 25 --rounds 10 --duration 8`` (25 clients per server, 5 per mailbox).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from imap_bench import DOMAIN, PASSWORD, MailwingImap, make_message
from imap_load import warm_logins
from imap_mixed import run_mixed


def workers_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (mailwing's worker processes)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(name))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="source folder of the old tree")
    p.add_argument("--new", required=True, help="source folder of the new tree")
    p.add_argument("--clients", type=int, default=25, help="clients per server")
    p.add_argument("--per-mailbox", type=int, default=5)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--duration", type=float, default=8.0)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mailwing-imap-ab-"))
    rng = random.Random(1)
    boxes = max(1, args.clients // args.per_mailbox)
    users = [f"mix{i:04d}@{DOMAIN}" for i in range(boxes)]
    mail = {u: [make_message(rng, u, n + 1, 2048) for n in range(20)] for u in users}
    creds = [(users[i % boxes], PASSWORD) for i in range(args.clients)]
    servers: dict[str, MailwingImap] = {}
    try:
        for name, tree in (("old", args.old), ("new", args.new)):
            folder = root / name
            (folder / "data").mkdir(parents=True)
            server = MailwingImap(folder, f"sqlite:///{folder / 'data' / 'mailwing.db'}")
            os.environ["PYTHONPATH"] = str(Path(tree).resolve())  # the server's code
            server.populate(mail)
            server.start(2)
            servers[name] = server
            warm_logins("127.0.0.1", server.port, creds, rounds=16)
            run_mixed("127.0.0.1", server.port, creds, 2.0, 1)  # warm-up
        ratios = []
        for n in range(args.rounds):
            pids = {k: workers_of(s.proc.pid) for k, s in servers.items() if s.proc}
            before = {k: cpu_seconds(v) for k, v in pids.items()}
            with ThreadPoolExecutor(2) as pool:
                runs = {k: pool.submit(run_mixed, "127.0.0.1", s.port, creds, args.duration, 1)
                        for k, s in servers.items()}
                results = {k: f.result() for k, f in runs.items()}
            per = {k: (cpu_seconds(pids[k]) - before[k]) / max(1, r.commands) * 1e6
                   for k, r in results.items()}
            ratios.append(per["new"] / per["old"])
            print(f"round {n + 1}: " + "; ".join(
                f"{k} {r.commands / r.elapsed:.0f} cmds/s, {per[k]:.1f} us CPU/cmd, "
                f"{r.errors} errors" for k, r in results.items())
                + f"; new/old {ratios[-1]:.3f}", flush=True)
        print(f"new/old CPU per command: median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds)")
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
