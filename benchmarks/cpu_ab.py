#!/usr/bin/env python3
"""IMAP or POP3 A/B with a CPU split: two mailwing trees on one database, rounds alternating.

Why: on a shared machine throughput moves with everyone else's load, while CPU seconds per
session barely do. With PostgreSQL on the same cores the server's cost is not only its
workers: every statement also runs a backend. So per round this prints sessions/s and the
CPU milliseconds per session of the worker processes, of the PostgreSQL backends serving
them (found by the client ports of the workers' sockets) and of the load generator.

Example: ``benchmarks/cpu_ab.py --old /work/main/src --new src --backend postgresql
--clients 10 --rounds 4`` (IMAP: the issue's session, LOGIN, SELECT, FETCH 1:* (FLAGS
RFC822.SIZE ENVELOPE), FETCH 1:* BODY.PEEK[], STORE, LOGOUT; ``--protocol pop3``: USER/PASS,
LIST, RETR of each message, QUIT; ``--users`` mailboxes of ``--messages``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import shutil
import statistics
import tempfile
from pathlib import Path

import imap_load
import pop3load
from cpu_usage import process_table, tree_cpu, tree_pids
from imap_bench import DOMAIN, PASSWORD, MailwingImap, make_message
from pop3_bench import Mailwing, postgres_database

_PG_PORT_HEX = f":{5432:04X}"


def _pg_backends(pids: list[int]) -> list[int]:
    """The PostgreSQL backends whose clients are sockets of ``pids``."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes and cols[2].endswith(_PG_PORT_HEX):
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                if cmd.startswith("postgres:") and any(f"({p})" in cmd for p in ports):
                    found.append(int(entry))
    return found


def split_cpu(server_pid: int) -> tuple[float, float]:
    """CPU seconds of the server tree (:mod:`cpu_usage`) and of its PostgreSQL backends so
    far (by port here, not by database name: both trees share one database)."""
    table = process_table()
    tree = tree_pids(table, [server_pid])
    return (tree_cpu(server_pid, table=table),
            sum(table[p].own for p in _pg_backends(list(tree)) if p in table))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="the 'old' tree's src folder (PYTHONPATH)")
    p.add_argument("--new", required=True, help="the 'new' tree's src folder (PYTHONPATH)")
    p.add_argument("--protocol", choices=["imap", "pop3"], default="imap")
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--messages", type=int, default=50)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    imap_load.set_workload("issue")
    imap = args.protocol == "imap"
    kind = MailwingImap if imap else Mailwing
    run_load = imap_load.run_load if imap else pop3load.run_load
    warm_logins = imap_load.warm_logins if imap else pop3load.warm_logins
    trees = {"old": str(Path(args.old).resolve()), "new": str(Path(args.new).resolve())}
    root = Path(tempfile.mkdtemp(prefix="mailwing-imap-ab-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        (root / "data").mkdir()
        url = (stack.enter_context(postgres_database(args.postgres_url))
               if args.backend == "postgresql" else f"sqlite:///{root / 'data' / 'mailwing.db'}")
        users = [f"user{i:04d}@{DOMAIN}" for i in range(min(args.users, args.clients))]
        rng = random.Random(1)
        mail = {u: [make_message(rng, u, n + 1, args.size) for n in range(args.messages)]
                for u in users}
        kind(root, url).populate(mail)  # with this interpreter's mailwing
        servers: dict[str, Mailwing] = {}
        for name, src in trees.items():
            os.environ["PYTHONPATH"] = src  # inherited by the server it starts
            home = root / name
            shutil.copytree(root / "data", home / "data")  # SQLite: a copy each
            server = kind(home, url if args.backend == "postgresql"
                                  else f"sqlite:///{home / 'data' / 'mailwing.db'}")
            server.auth_extra = "cache_ttl = 36000\n"  # the mail path, not Argon2id
            stack.callback(server.stop)
            server.start(args.workers)
            servers[name] = server
        creds = [(users[i % len(users)], PASSWORD) for i in range(args.clients)]
        for server in servers.values():
            warm_logins("127.0.0.1", server.port, creds, rounds=8 * args.workers)
            run_load("127.0.0.1", server.port, creds, 2.0, 2)
        keys = ("sessions/s", "server ms", "pg ms", "load ms")
        figures: dict[str, dict[str, list[float]]] = {
            n: {k: [] for k in keys} for n in servers}
        for r in range(args.rounds):
            for name in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
                server = servers[name]
                assert server.proc is not None
                srv0, pg0 = split_cpu(server.proc.pid)
                load0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                load = run_load("127.0.0.1", server.port, creds, args.duration, 2)
                load1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                srv1, pg1 = split_cpu(server.proc.pid)
                per = 1000 / max(1, load.sessions)
                got = figures[name]
                got["sessions/s"].append(load.sessions_per_s)
                got["server ms"].append((srv1 - srv0) * per)
                got["pg ms"].append((pg1 - pg0) * per)
                got["load ms"].append((load1.ru_utime + load1.ru_stime - load0.ru_utime
                                       - load0.ru_stime) * per)
                print(f"round {r + 1} {name}: {load.sessions_per_s:.1f} sessions/s "
                      f"({load.errors} errors), CPU ms per session: server "
                      f"{got['server ms'][-1]:.2f}, postgres {got['pg ms'][-1]:.2f}, "
                      f"load {got['load ms'][-1]:.2f}", flush=True)
    for key in keys:
        old, new = (statistics.median(figures[n][key]) for n in ("old", "new"))
        ratio = f", new/old {new / old:.2f}x" if old else ""
        print(f"{key} (medians): old {old:.2f}, new {new:.2f}{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
