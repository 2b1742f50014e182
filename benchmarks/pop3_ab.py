#!/usr/bin/env python3
"""POP3 A/B: two mailwing source trees side by side on one database, rounds alternating.

Why: on a shared machine absolute figures move with everyone else's load, so a change is
judged by running the code before it ("old", e.g. a ``git worktree`` of main) and after it
("new") at the same time, on the same mail, alternating who goes first. Besides sessions/s
it reports the server's CPU seconds per session (the worker processes' user + system time
over the sessions served), which a loaded machine disturbs far less than throughput, and the
single-client RETR rate of one big message.

Example: ``benchmarks/pop3_ab.py --old /work/wt/main/src --new src --backend postgresql
--big-size 26214400 --duration 0`` (only the big RETR), or ``--clients 10 --rounds 4``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import tempfile
from pathlib import Path

from cpu_usage import tree_cpu
from pop3_bench import (
    BIG_USER,
    DOMAIN,
    PASSWORD,
    Mailwing,
    make_big,
    make_message,
    postgres_database,
)
from pop3load import retr_throughput, run_load, warm_logins


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="the 'old' tree's src folder (PYTHONPATH)")
    p.add_argument("--new", required=True, help="the 'new' tree's src folder (PYTHONPATH)")
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--messages", type=int, default=50)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds of session load per round (0: none)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--big-size", type=int, default=0,
                   help="octets of a message RETRieved by one client each round (0: none)")
    p.add_argument("--workers", type=int, default=2)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    trees = {"old": str(Path(args.old).resolve()), "new": str(Path(args.new).resolve())}
    root = Path(tempfile.mkdtemp(prefix="mailwing-pop3-ab-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        (root / "data").mkdir()
        url = (stack.enter_context(postgres_database(args.postgres_url))
               if args.backend == "postgresql" else f"sqlite:///{root / 'data' / 'mailwing.db'}")
        users = [f"user{i:04d}@{DOMAIN}" for i in range(args.clients)]
        rng = random.Random(1)
        mail = {u: [make_message(rng, u, n, args.size) for n in range(args.messages)]
                for u in users}
        if args.big_size:
            mail[BIG_USER] = [make_big(args.big_size)]
        Mailwing(root, url).populate(mail)  # with this interpreter's mailwing
        servers: dict[str, Mailwing] = {}
        for name, src in trees.items():
            os.environ["PYTHONPATH"] = src  # inherited by the server it starts
            home = root / name
            shutil.copytree(root / "data", home / "data")  # SQLite: a copy each
            server = Mailwing(home, url if args.backend == "postgresql"
                              else f"sqlite:///{home / 'data' / 'mailwing.db'}")
            server.auth_extra = "cache_ttl = 36000\n"  # the mail path, not Argon2id
            stack.callback(server.stop)
            server.start(args.workers)
            servers[name] = server
        creds = [(u, PASSWORD) for u in users]
        for server in servers.values():
            warm_logins("127.0.0.1", server.port, creds, rounds=8 * args.workers)
            if args.duration:
                run_load("127.0.0.1", server.port, creds, 2.0, 2)
        rate: dict[str, list[float]] = {n: [] for n in servers}
        cpu: dict[str, list[float]] = {n: [] for n in servers}
        big: dict[str, list[float]] = {n: [] for n in servers}
        for r in range(args.rounds):
            for name in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
                server = servers[name]
                assert server.proc is not None
                line = f"round {r + 1} {name}:"
                if args.duration:
                    before = tree_cpu(server.proc.pid)
                    load = run_load("127.0.0.1", server.port, creds, args.duration, 2)
                    used = tree_cpu(server.proc.pid) - before
                    rate[name].append(load.sessions_per_s)
                    cpu[name].append(used / max(1, load.sessions) * 1000)
                    line += f" {rate[name][-1]:.1f} sessions/s, {cpu[name][-1]:.2f} ms CPU each"
                if args.big_size:
                    big[name].append(retr_throughput("127.0.0.1", server.port, BIG_USER,
                                                     PASSWORD)[1])
                    line += f" RETR {big[name][-1]:.0f} MB/s"
                print(line, flush=True)
    for label, values in (("sessions/s", rate), ("CPU ms per session", cpu),
                          ("big RETR MB/s", big)):
        if values["old"]:
            old, new = statistics.median(values["old"]), statistics.median(values["new"])
            print(f"{label} (medians): old {old:.2f}, new {new:.2f}, new/old {new / old:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
