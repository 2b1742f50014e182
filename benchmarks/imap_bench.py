"""IMAP throughput of mailwing, side by side with Dovecot when it is installed.

Run ``.venv/bin/python benchmarks/imap_bench.py --help``; benchmarks/README.md (section IMAP)
says how to read the output.

What is measured, per configuration (server x workers x concurrent clients): every client
repeats the session of :mod:`imap_load` (LOGIN, SELECT INBOX, FETCH 1:* (FLAGS ENVELOPE
RFC822.SIZE), three FETCH n BODY.PEEK[], STORE +FLAGS, SEARCH SUBJECT, LOGOUT; RFC 3501
section 6) for ``--duration`` seconds, after every user has logged in 8 times per worker
process (so each process's password cache is warm), one untimed session per mailbox (the
first FETCH of ENVELOPEs builds Dovecot's cache file and mailwing's per-content cache) and
``--warmup`` seconds of the same load that are thrown away (page cache and the like).
Then one client FETCHes a 25 MB BODY[] and the MB/s are reported.

Clients share ``--users`` mailboxes (client i logs in as user i mod users), so several sessions
work on one mailbox at once, as a user's phone, laptop and webmail do; each mailbox holds
``--messages`` distinct messages.

Fairness: both servers get the same users, the same message bytes (including the trace header
fields mailwing's delivery adds), the same load generator, session logging off and plaintext
LOGIN on loopback. Passwords: Dovecot gets a cheap salted SHA-512 by default, or with
``--dovecot-schemes argon2id`` the very Argon2id PHC strings mailwing stores. Dovecot's auth
cache keeps the hash and re-runs Argon2id on every login (seconds per login under load here),
while mailwing caches the verdict, so argon2id rows measure login cost, not IMAP.

Everything started here (servers, load processes, temp folders, a PostgreSQL database) is
removed at the end, on Ctrl-C and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imap_dovecot import DovecotImap, wait_for_greeting
from imap_load import (
    COMMANDS,
    LoadResult,
    body_throughput,
    prime,
    run_load,
    set_workload,
    warm_logins,
)
from imap_mixed import run_mixed
from pop3_bench import (
    Mailwing,
    add_backend_option,
    backends_of,
    bench_main,
    big_message_servers,
    free_port,
    make_big,
    parse_ints,
    per_mailwing,
    pg_ratio_summary,
    ssha512,
    start_servers,
)
from rounds import (
    Measure,
    Target,
    Workload,
    add_round_options,
    print_summary,
    run_workloads,
    take_turn,
)

PASSWORD = "bench-password"
DOMAIN = "bench.test"
BIG_USER = f"big@{DOMAIN}"
NAMES = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov",
         "Donald Knuth", "Frances Allen", "Ken Thompson")
WORDS = ("mail", "server", "python", "message", "folder", "mailbox", "octet", "protocol",
         "header", "envelope", "flag", "search", "throughput", "latency", "client", "loopback")


def make_message(rng: random.Random, address: str, n: int, size: int) -> bytes:
    """A plain-text message of about ``size`` octets (0.5x to 1.5x), unique per (address, n):
    Subject, Message-ID, sender and date vary, so ENVELOPE and SEARCH see real data and no
    content is stored once for many messages."""
    sender = rng.choice(NAMES)
    login = sender.split()[1].lower()
    head = (f"From: {sender} <{login}@example.org>\r\nTo: <{address}>\r\n"
            f"Subject: benchmark message {n} about {rng.choice(WORDS)}\r\n"
            f"Message-ID: <{uuid.UUID(int=rng.getrandbits(128)).hex}@example.org>\r\n"
            f"Date: {1 + n % 28:d} Nov 2026 {n % 24:02d}:{n % 60:02d}:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    target = int(size * rng.uniform(0.5, 1.5))
    lines = [head]
    total = len(head)
    while total < target:
        line = " ".join(rng.choice(WORDS) for _ in range(10)).encode()[:70] + b"\r\n"
        lines.append(line)
        total += len(line)
    return b"".join(lines)


# -- mailwing -----------------------------------------------------------------------------------

class MailwingImap(Mailwing):
    """The POP3 benchmark's ``mailwing serve`` wrapper with the IMAP listener instead."""

    def write_config(self, workers: int) -> None:
        super().write_config(workers)
        text = self.config.read_text()
        text = text.replace(f"[pop3]\nport = {self.port}\n", "[pop3]\nport = 0\n")
        text = text.replace("[imap]\nport = 0\n", f"[imap]\nport = {self.port}\n")
        self.config.write_text(text)

    def populate(self, mail: dict[str, list[bytes]]) -> dict[str, str]:
        self.write_config(1)
        self.cli("db", "upgrade")
        return asyncio.run(self._fill(mail))

    async def _fill(self, mail: dict[str, list[bytes]]) -> dict[str, str]:
        """Users and messages through mailwing's own storage and delivery code, in-process
        and 16 at a time (the rows and trace fields are exactly what the server writes)."""
        from mailwing.services.delivery import deliver_local
        from mailwing.services.passwords import hash_password
        from mailwing.storage import open_storage

        storage = await open_storage(self.database_url, data_dir=self.root / "data")
        gate = asyncio.Semaphore(16)

        async def one(address: str, data: bytes) -> None:
            async with gate:
                await deliver_local(storage, address, data, hostname=DOMAIN)

        try:
            hashes = {}
            for address, messages in mail.items():
                user, _ = await storage.add_user(address, hash_password(PASSWORD),
                                                 create_domain=True)
                hashes[address] = user.password_hash
                await asyncio.gather(*(one(address, data) for data in messages))
            return hashes
        finally:
            await storage.close()

    def start(self, workers: int, timeout: float = 60.0) -> None:
        self.write_config(workers)
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailwing", "serve", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        wait_for_greeting(self.proc, self.port, timeout,
                          lambda: (self.root / "server.log").read_text(errors="replace"))


# -- running and reporting ----------------------------------------------------------------------

@dataclass
class Row:
    server: str
    detail: str
    clients: int
    result: LoadResult


def measure(port: int, users: list[str], clients: int, args: argparse.Namespace,
            login_rounds: int) -> LoadResult:
    """Warm up (logins, one session per mailbox, then ``--warmup`` seconds of load), then run
    the measured load."""
    creds = [(users[i % len(users)], PASSWORD) for i in range(clients)]
    failures = warm_logins("127.0.0.1", port, creds, rounds=login_rounds)
    if failures:
        print(f"          warning: {failures} warm-up logins failed", flush=True)
    primed = prime("127.0.0.1", port, creds)
    if primed.errors:
        print(f"          warning: priming failed: {primed.first_error}", flush=True)
    if args.warmup > 0:
        run_load("127.0.0.1", port, creds, args.warmup, args.load_procs)
    return run_load("127.0.0.1", port, creds, args.duration, args.load_procs)


HEADER = (f"{'server':9} {'configuration':24} {'clients':>7} {'ops/s':>9} {'sessions/s':>10} "
          f"{'MB/s':>7} {'errors':>6} {'loadgen':>7}")


def print_row(row: Row) -> None:
    r = row.result
    print(f"{row.server:9} {row.detail:24} {row.clients:>7} {r.ops_per_s:>9.1f} "
          f"{r.sessions_per_s:>10.2f} {r.octets / r.elapsed / 1e6 if r.elapsed else 0:>7.1f} "
          f"{r.errors:>6} {r.client_cpu_share:>7.0%}", flush=True)
    cells = [f"{name} {r.percentile(name, 50) * 1000:.1f}/{r.percentile(name, 99) * 1000:.1f}"
             for name in COMMANDS if r.latencies.get(name)]
    print(f"          p50/p99 ms: {'  '.join(cells)}", flush=True)
    if r.first_error:
        print(f"          first error: {r.first_error}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clients", type=parse_ints, default=[10, 50, 100],
                   help="concurrent clients, comma-separated (one configuration each)")
    p.add_argument("--workers", type=parse_ints, default=[2],
                   help="mailwing server.workers values, comma-separated (rounds: the first)")
    p.add_argument("--workload", choices=("issue", "client"), default="issue",
                   help="issue: the session of issue #9; client: imap_load's mail client")
    p.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first")
    p.add_argument("--users", type=int, default=50, help="mailboxes the clients share")
    p.add_argument("--messages", type=int, default=50, help="messages per mailbox")
    p.add_argument("--size", type=int, default=4096, help="average octets per message")
    p.add_argument("--big-size", type=int, default=25 * 1024 * 1024,
                   help="octets of the single-client BODY[] message (0 skips it)")
    add_backend_option(p)
    p.add_argument("--postgres-url", default=os.environ.get(
        "MAILWING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="administrative URL used to create and drop the benchmark database")
    p.add_argument("--load-procs", type=int, default=2,
                   help="processes the load generator spreads its clients over")
    p.add_argument("--servers", default="mailwing,dovecot",
                   help="which servers to run; Dovecot is skipped when not installed")
    p.add_argument("--dovecot-required", action="store_true",
                   help="fail instead of skipping Dovecot when it cannot be run")
    p.add_argument("--dovecot-schemes", default="plain,argon2id",
                   help="password schemes Dovecot is run with, comma-separated: ssha512 (cheap, "
                        "compares the mail path) and/or argon2id (mailwing's own hashes; every "
                        "Dovecot login then costs an Argon2id check), plain ({PLAIN})")
    p.add_argument("--mixed-clients", type=lambda t: parse_ints(t) if t.strip() else [],
                   default=[10, 50],
                   help="rounds: client counts of the imaptest-style mixed load (imap_mixed; "
                        "empty: none)")
    p.add_argument("--per-mailbox", type=int, default=5,
                   help="mixed load: clients sharing one mailbox")
    p.add_argument("--mailwing-cache-ttl", type=float, default=None,
                   help="auth.cache_ttl for mailwing (default: mailwing's default); a long "
                        "TTL isolates the mail path from Argon2id cache misses")
    add_round_options(p)
    p.add_argument("--keep", action="store_true", help="keep the temp folder for inspection")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 3600 or args.messages < 1 or args.users < 1 \
            or args.size < 512:
        p.error("--duration must be in (0, 3600], --messages/--users >= 1, --size >= 512")
    backends_of(args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_workload(args.workload)
    take_turn(args.turns)
    if args.rounds > 0:
        return bench_main(args, "mailwing-imap-bench-", run_rounds_all, summarise_rounds)
    return bench_main(args, "mailwing-imap-bench-", run_all, summarise)


def _imap_measure(port: int, creds: list[tuple[str, str]], args: argparse.Namespace
                  ) -> Measure:
    r = run_load("127.0.0.1", port, creds, args.duration, args.load_procs)
    every = sorted(v for values in r.latencies.values() for v in values)

    def pct(p: float) -> float:
        return every[min(len(every) - 1, int(len(every) * p / 100))] * 1000 if every else 0.0

    return Measure(r.ops_per_s, pct(50), pct(99), r.errors,
                   r.first_error[:80] if r.first_error else "", ops=r.ops)


def _mixed_measure(port: int, creds: list[tuple[str, str]], args: argparse.Namespace
                   ) -> Measure:
    r = run_mixed("127.0.0.1", port, creds, args.duration, args.load_procs)
    every = sorted(r.latencies)
    p50 = every[len(every) // 2] * 1000 if every else 0.0
    p99 = every[min(len(every) - 1, len(every) * 99 // 100)] * 1000 if every else 0.0
    note = f"FETCH NO {r.fetch_no}" + (f"; first error: {r.examples[0]}" if r.examples else "")
    return Measure(r.commands / r.elapsed if r.elapsed else 0.0, p50, p99, r.errors, note,
                   ops=r.commands)


def run_rounds_all(args: argparse.Namespace, root: Path, urls: list[str], use_dovecot: bool,
                   rows: list[Any], big: dict[str, float], stack: contextlib.ExitStack
                   ) -> None:
    """All servers running at once; the rounds of every workload interleaved
    (:func:`rounds.run_workloads`)."""

    users = [f"user{i:04d}@{DOMAIN}" for i in range(min(args.users, max(args.clients)))]
    rng = random.Random(1)
    mail = {u: [make_message(rng, u, n + 1, args.size) for n in range(args.messages)]
            for u in users}
    if args.big_size:
        mail[BIG_USER] = [make_big(args.big_size)]
    mixed_users = [f"mix{i:04d}@{DOMAIN}" for i in range(
        max(args.mixed_clients, default=0) // max(1, args.per_mailbox) or 0)]
    for u in mixed_users:
        mail[u] = [make_message(rng, u, n + 1, 2048) for n in range(20)]
    workers = args.workers[0]
    servers = start_servers(args, root, urls, mail, stack, MailwingImap,
                            DovecotImap if use_dovecot else None)
    workloads = []
    for clients in args.clients:
        creds = [(users[i % len(users)], PASSWORD) for i in range(clients)]
        targets = []
        for label, port, pid, database in servers:
            warm_logins("127.0.0.1", port, creds,
                        rounds=8 * workers if label.startswith("mailwing") else 1)
            prime("127.0.0.1", port, creds)
            if args.warmup > 0:
                run_load("127.0.0.1", port, creds, args.warmup, args.load_procs)
            targets.append(Target(label, functools.partial(_imap_measure, port, creds, args),
                                  pid, database))
        workloads.append(Workload(f"IMAP {args.workload} sessions, {clients} clients",
                                  targets, "cmds"))
    for clients in args.mixed_clients:
        boxes = max(1, clients // max(1, args.per_mailbox))
        creds = [(mixed_users[i % boxes], PASSWORD) for i in range(clients)]
        targets = []
        for label, port, pid, database in servers:
            if label.startswith("mailwing"):
                warm_logins("127.0.0.1", port, creds, rounds=8 * workers)
            targets.append(Target(label, functools.partial(_mixed_measure, port, creds, args),
                                  pid, database))
        workloads.append(Workload(f"IMAP mixed load (imaptest-style), {clients} clients, "
                                  f"{args.per_mailbox} per mailbox", targets, "cmds"))
    rows.extend(run_workloads(workloads, args))
    if args.big_size:
        for label, port in big_message_servers(servers):
            _, big[label] = body_throughput("127.0.0.1", port, BIG_USER, PASSWORD)


def summarise_rounds(args: argparse.Namespace, rows: list[Any], big: dict[str, float],
                     use_dovecot: bool) -> None:
    print("\n== summary (target: mailwing >= 1.0x Dovecot at every client count; the "
          "{PLAIN} ratio compares the mail path, the {ARGON2ID} one equal password cost)")
    for title, results in rows:
        for ours, theirs in per_mailwing(results):
            print_summary(title, theirs, ours, "cmds", 1.0)
        pg_ratio_summary(results, "cmds", title)
    for label, rate in big.items():
        print(f"single-client FETCH BODY[] of {args.big_size / 1e6:.1f} MB: {label} "
              f"{rate:.1f} MB/s{'  (target >= 300 MB/s)' if label.startswith('mailwing') else ''}")


def run_all(args: argparse.Namespace, root: Path, url: str, use_dovecot: bool,
            rows: list[Row], big: dict[str, float], stack: contextlib.ExitStack) -> None:
    users = [f"user{i:04d}@{DOMAIN}" for i in range(min(args.users, max(args.clients)))]
    rng = random.Random(1)
    t0 = time.monotonic()
    mail = {u: [make_message(rng, u, n + 1, args.size) for n in range(args.messages)]
            for u in users}
    if args.big_size:
        mail[BIG_USER] = [make_big(args.big_size)]
    (root / "mailwing" / "data").mkdir(parents=True)
    mw = MailwingImap(root / "mailwing", url)
    stack.callback(mw.stop)
    if "mailwing" in args.servers:
        hashes = mw.populate(mail)
        print(f"mailwing: {len(users)} users x {args.messages} messages (~{args.size} octets) "
              f"stored ({args.backend}) in {time.monotonic() - t0:.1f}s", flush=True)
    else:
        from mailwing.services.passwords import hash_password

        hashes = {u: hash_password(PASSWORD) for u in mail}
    print(HEADER, flush=True)
    for workers in args.workers if "mailwing" in args.servers else []:
        mw.start(workers)
        try:
            for clients in args.clients:
                row = Row("mailwing", f"{args.backend}, workers={workers}", clients,
                          measure(mw.port, users, clients, args, 8 * workers))
                rows.append(row)
                print_row(row)
            if args.big_size and workers == args.workers[-1]:
                _, big["mailwing"] = body_throughput("127.0.0.1", mw.port, BIG_USER, PASSWORD)
        finally:
            mw.stop()
    if use_dovecot:
        run_dovecot(args, root, users, mail, hashes, rows, big, stack)


def run_dovecot(args: argparse.Namespace, root: Path, users: list[str],
                mail: dict[str, list[bytes]], hashes: dict[str, str], rows: list[Row],
                big: dict[str, float], stack: contextlib.ExitStack) -> None:
    from mailwing.services.delivery import trace_headers

    for scheme in [s.strip().lower() for s in args.dovecot_schemes.split(",") if s.strip()]:
        if scheme == "argon2id":
            pw = {u: "{ARGON2ID}" + h for u, h in hashes.items()}
        elif scheme == "ssha512":
            pw = {u: "{SSHA512}" + ssha512(PASSWORD) for u in hashes}
        else:
            raise SystemExit(f"unknown --dovecot-schemes entry {scheme!r}")
        dv = DovecotImap(root / f"dovecot-{scheme}", free_port(), max(args.clients))
        stack.callback(dv.stop)
        dv.set_users(pw)
        t0 = time.monotonic()
        for address, messages in mail.items():
            for data in messages:
                dv.add_message(address, trace_headers(address, None, DOMAIN) + data)
        print(f"dovecot ({scheme}): Maildir written in {time.monotonic() - t0:.1f}s",
              flush=True)
        dv.start()
        try:
            for clients in args.clients:
                row = Row("dovecot", f"maildir, {scheme}", clients,
                          measure(dv.port, users, clients, args, 1))
                rows.append(row)
                print_row(row)
            if args.big_size and "dovecot" not in big:
                _, big["dovecot"] = body_throughput("127.0.0.1", dv.port, BIG_USER, PASSWORD)
        finally:
            dv.stop()


def summarise(args: argparse.Namespace, rows: list[Row], big: dict[str, float],
              use_dovecot: bool) -> None:
    print()
    for name, rate in big.items():
        print(f"single client FETCH BODY[] of a {args.big_size / 1e6:.1f} MB message: {name} "
              f"{rate:.1f} MB/s{'  (target >= 300)' if name == 'mailwing' else ''}")
    if not use_dovecot:
        print("Dovecot not run (not installed, not root, or not in --servers): no ratios")
        return
    print("\nratio mailwing / Dovecot (operations per second; >= 1 means mailwing is as fast "
          "or faster):")
    for mw in (r for r in rows if r.server == "mailwing"):
        for dv in (r for r in rows if r.server == "dovecot" and r.clients == mw.clients):
            ratio = (mw.result.ops_per_s / dv.result.ops_per_s
                     if dv.result.ops_per_s else float("inf"))
            print(f"  {mw.detail:24} vs {dv.detail:20} clients={mw.clients:<4} {ratio:6.2f}")
    if "mailwing" in big and big.get("dovecot"):
        print(f"  single-client FETCH BODY[] of {args.big_size / 1e6:.1f} MB: "
              f"{big['mailwing'] / big['dovecot']:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
