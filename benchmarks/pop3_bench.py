"""POP3 throughput of mailwing, side by side with Dovecot when it is installed.

Run ``make bench`` or ``.venv/bin/python benchmarks/pop3_bench.py --help``; see
benchmarks/README.md for how to read the output.

What is measured, per configuration (server x workers x concurrent clients): every client
repeats connect, USER/PASS, LIST, RETR of every message, QUIT (no DELE) for ``--duration``
seconds, after every user has logged in 8 times per worker process (so each process's password
cache is warm) and ``--warmup`` seconds of the same load whose results are thrown away (page
cache, Dovecot's indexes). Then one client RETRs a 25 MB
message and reports MB/s.

Fairness: both servers get the same users (one mailbox per client), the same message bytes
(including the two trace headers mailwing's delivery adds), the same Argon2id PHC strings, the
same load generator, logging of sessions switched off, and plaintext login on loopback. They
differ by design in one place the output states: mailwing's ``auth.cache_ttl`` skips the
Argon2id check for a recently verified password, while Dovecot's ``auth_cache`` keeps the hash
and re-verifies it on every login; ``--dovecot-schemes`` therefore also runs Dovecot with a
cheap salted SHA-512 hash, which isolates the mail path from the login cost.

Everything started here (servers, load processes, temp folders, a PostgreSQL database) is
removed at the end, on Ctrl-C and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dovecot_harness import Dovecot, dovecot_available
from pop3load import LoadResult, retr_throughput, run_load, warm_logins
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
WORDS = ("mail", "server", "python", "message", "retrieve", "mailbox", "octet", "protocol",
         "header", "body", "stream", "socket", "throughput", "latency", "client", "loopback")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_message(rng: random.Random, address: str, n: int, size: int) -> bytes:
    """A plain-text message of exactly ``size`` octets (CRLF endings), unique per (address, n)
    so that mailwing's content de-duplication cannot make the benchmark cheaper."""
    head = (f"From: Sender <sender@example.org>\r\nTo: <{address}>\r\n"
            f"Subject: benchmark message {n}\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
            f"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    lines: list[bytes] = []
    total = len(head)
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(10)).encode()[:70] + b"\r\n"
        lines.append(line)
        total += len(line)
    data = head + b"".join(lines)
    return data[: size - 2] + b"\r\n" if len(data) > size else data


def make_big(size: int) -> bytes:
    """A large message: base64 text lines, like a big attachment."""
    head = (b"From: sender@example.org\r\nTo: big@bench.test\r\nSubject: big\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    raw = hashlib.shake_256(b"mailwing").digest(size * 3 // 4)
    body = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return head + body[: size - len(head)].rsplit(b"\r\n", 1)[0] + b"\r\n"


# -- mailwing ---------------------------------------------------------------------------------

@dataclass
class Mailwing:
    root: Path
    database_url: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    server_extra: str = ""  # more [server] settings, one per line
    auth_extra: str = ""  # more [auth] settings, one per line

    @property
    def config(self) -> Path:
        return self.root / "mailwing.toml"

    def write_config(self, workers: int) -> None:
        self.port = free_port()
        listeners = "\n".join(
            f"[{name}]\nport = {self.port if name == 'pop3' else 0}\n"
            for name in ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "admin")
        )
        self.config.write_text(f"""\
[server]
hostname = "{DOMAIN}"
listen = ["127.0.0.1"]
data_dir = "{self.root / 'data'}"
workers = {workers}
log_level = "warning"
max_connections_per_ip = 100000
{self.server_extra}
[database]
url = "{self.database_url}"

[auth]
allow_plaintext = true
{self.auth_extra}
{listeners}""")

    def cli(self, *args: str, data: bytes | None = None) -> bytes:
        out = subprocess.run([sys.executable, "-m", "mailwing", "--config", str(self.config),
                              *args], input=data, capture_output=True, timeout=300)
        if out.returncode:
            raise RuntimeError(f"mailwing {' '.join(args)}: {out.stderr.decode()}")
        return out.stdout

    def populate(self, mail: dict[str, list[bytes]]) -> dict[str, str]:
        """Create users and deliver their messages; return address -> stored Argon2id hash.

        Goes through mailwing's own storage and delivery code in-process (thousands of
        ``mailwing deliver`` processes would take minutes), so the rows and trace headers are
        exactly what the server itself writes."""
        self.write_config(1)
        self.cli("db", "upgrade")
        return asyncio.run(self._populate(mail))

    async def _populate(self, mail: dict[str, list[bytes]]) -> dict[str, str]:
        from mailwing.services.delivery import deliver_local
        from mailwing.services.passwords import hash_password
        from mailwing.storage import open_storage

        storage = await open_storage(self.database_url, data_dir=self.root / "data")
        try:
            hashes = {}
            for address, messages in mail.items():
                user, _ = await storage.add_user(address, hash_password(PASSWORD),
                                                 create_domain=True)
                hashes[address] = user.password_hash
                for data in messages:
                    await deliver_local(storage, address, data, hostname=DOMAIN)
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mailwing exited: {(self.root / 'server.log').read_text()}")
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                if s.recv(100).startswith(b"+OK"):
                    return
            time.sleep(0.1)
        raise RuntimeError("mailwing did not start listening")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # worker processes left behind, if any
        self.proc = None


def database_name(url: str) -> str | None:
    """The PostgreSQL database of a storage URL (its backends' CPU is reported as db CPU),
    None for SQLite."""
    return url.rsplit("/", 1)[1] if url.startswith("postgresql") else None


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A throw-away PostgreSQL database for one benchmark run."""
    import asyncpg

    name = f"mailwing_bench_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- running and reporting ----------------------------------------------------------------------

@dataclass
class Row:
    server: str
    detail: str
    clients: int
    result: LoadResult


def measure(port: int, users: list[str], clients: int, args: argparse.Namespace,
            login_rounds: int) -> LoadResult:
    """Warm up (logins, then ``--warmup`` seconds of load), then run the measured load."""
    creds = [(users[i % len(users)], PASSWORD) for i in range(clients)]
    failures = warm_logins("127.0.0.1", port, creds, rounds=login_rounds)
    if failures:
        print(f"          warning: {failures} warm-up logins failed", flush=True)
    if args.warmup > 0:
        run_load("127.0.0.1", port, creds, args.warmup, args.load_procs)
    return run_load("127.0.0.1", port, creds, args.duration, args.load_procs)


def print_row(row: Row) -> None:
    r = row.result
    print(f"{row.server:9} {row.detail:28} {row.clients:>7} {r.sessions_per_s:>10.1f} "
          f"{r.messages_per_s:>10.0f} {r.mb_per_s:>8.1f} {r.percentile(50) * 1000:>8.1f} "
          f"{r.percentile(99) * 1000:>8.1f} {r.errors:>6} {r.client_cpu_share:>6.0%}", flush=True)
    if r.first_error:
        print(f"          first error: {r.first_error}", flush=True)


HEADER = (f"{'server':9} {'configuration':28} {'clients':>7} {'sessions/s':>10} "
          f"{'msgs/s':>10} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'loadgen':>6}")


def parse_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive whole numbers, comma-separated")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clients", type=parse_ints, default=[10, 50, 100],
                   help="concurrent clients, comma-separated (one configuration each)")
    p.add_argument("--workers", type=parse_ints, default=[2],
                   help="mailwing server.workers values, comma-separated (rounds: the first)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load first")
    p.add_argument("--messages", type=int, default=50, help="messages per mailbox")
    p.add_argument("--size", type=int, default=4096, help="octets per message")
    p.add_argument("--big-size", type=int, default=25 * 1024 * 1024,
                   help="octets of the single-client RETR message (0 skips it)")
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
                   help="password schemes Dovecot is run with: plain ({PLAIN}, the issue's "
                        "cheap reference), ssha512, argon2id (mailwing's own hashes: equal "
                        "cost per verification)")
    p.add_argument("--mailwing-cache-ttl", type=float, default=None,
                   help="auth.cache_ttl for mailwing (default: mailwing's default); a long "
                        "TTL isolates the mail path from Argon2id cache misses")
    add_round_options(p)
    p.add_argument("--keep", action="store_true", help="keep the temp folder for inspection")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 3600 or args.messages < 1 or args.size < 512:
        p.error("--duration must be in (0, 3600], --messages >= 1, --size >= 512")
    backends_of(args)
    return args


def ssha512(password: str) -> str:
    salt = os.urandom(8)
    return base64.b64encode(hashlib.sha512(password.encode() + salt).digest() + salt).decode()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def add_backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="sqlite",
                   help="mailwing's storage: sqlite, postgresql, or both (sqlite,postgresql: "
                        "one mailwing server per backend in the same rounds, and the ratio "
                        "PostgreSQL / SQLite against the issue's 0.8x; rounds only)")


def backends_of(args: argparse.Namespace) -> list[str]:
    """``--backend`` as a list (and ``args.backends``); exits with a usage error if wrong."""
    names = [b.strip() for b in args.backend.split(",") if b.strip()]
    if not names or any(b not in ("sqlite", "postgresql") for b in names) \
            or len(set(names)) < len(names):
        raise SystemExit(f"--backend: sqlite, postgresql or both, not {args.backend!r}")
    if len(names) > 1 and args.rounds <= 0:
        raise SystemExit("--backend with two backends needs rounds (--rounds > 0)")
    args.backends = names
    return names


def mailwing_dir(args: argparse.Namespace, backend: str) -> str:
    """The folder of the mailwing server of ``backend`` in the benchmark's temp folder."""
    return "mailwing" if len(args.backends) == 1 else f"mailwing-{backend}"


def pg_ratio_summary(results: dict[str, list[Measure]], unit: str, title: str) -> list[str]:
    """With both backends: PostgreSQL's rounds against SQLite's (the issue's 0.8x)."""
    pg = next((k for k in results if k.startswith("mailwing postgresql")), None)
    lite = next((k for k in results if k.startswith("mailwing sqlite")), None)
    if pg is None or lite is None:
        return []
    return print_summary(f"{title} [PostgreSQL / SQLite]", {pg: results[pg],
                                                            lite: results[lite]}, pg, unit, 0.8)


def per_mailwing(results: dict[str, list[Measure]]
                 ) -> list[tuple[str, dict[str, list[Measure]]]]:
    """Each mailwing server's rounds with the references' (not with the other mailwing)."""
    refs = {k: v for k, v in results.items() if not k.startswith("mailwing")}
    return [(k, {k: v, **refs}) for k, v in results.items() if k.startswith("mailwing")]


#: (label, port, root pid of the server's process tree, PostgreSQL database or None)
Server = tuple[str, int, int | None, str | None]


def start_servers(args: argparse.Namespace, root: Path, urls: list[str],
                  mail: dict[str, list[bytes]], stack: contextlib.ExitStack,
                  mailwing_class: type[Mailwing], dovecot_class: type[Dovecot] | None
                  ) -> list[Server]:
    """The servers of a rounds run (POP3 here, IMAP in imap_bench.py), each holding
    ``mail``: one mailwing per ``--backend`` (``urls`` in the same order), then one Dovecot
    per ``--dovecot-schemes`` when ``dovecot_class`` is given, with mailwing's password
    hashes where the scheme needs them. Each is stopped by ``stack``."""
    from mailwing.services.delivery import trace_headers

    workers = args.workers[0]
    ttl = "" if args.mailwing_cache_ttl is None else f" ttl={args.mailwing_cache_ttl:g}"
    servers: list[Server] = []
    hashes: dict[str, str] = {}
    for backend, url in zip(args.backends, urls, strict=True):
        folder = root / mailwing_dir(args, backend)
        (folder / "data").mkdir(parents=True)
        mw = mailwing_class(folder, url)
        if args.mailwing_cache_ttl is not None:
            mw.auth_extra = f"cache_ttl = {args.mailwing_cache_ttl}\n"
        stack.callback(mw.stop)
        hashes = mw.populate(mail)
        mw.start(workers)
        assert mw.proc is not None
        servers.append((f"mailwing {backend} w={workers}{ttl}", mw.port, mw.proc.pid,
                        database_name(url)))
    if dovecot_class is None:
        return servers
    for scheme in [s.strip().lower() for s in args.dovecot_schemes.split(",") if s.strip()]:
        dv = dovecot_class(root / f"dovecot-{scheme}", free_port(), max(args.clients))
        stack.callback(dv.stop)
        dv.set_users(dovecot_passwords(scheme, hashes))
        for address, messages in mail.items():
            for data in messages:
                dv.add_message(address, trace_headers(address, None, DOMAIN) + data)
        dv.start()
        servers.append((f"dovecot {scheme_label(scheme)}", dv.port,
                        dv.proc.pid if dv.proc else None, None))
    return servers


def big_message_servers(servers: list[Server]) -> list[tuple[str, int]]:
    """(label, port) of the servers the single-client big-message read is timed on: every
    mailwing and the first reference."""
    mailwings = [s for s in servers if s[0].startswith("mailwing")]
    others = [s for s in servers if not s[0].startswith("mailwing")]
    return [(label, port) for label, port, *_ in mailwings + others[:1]]


RunAll = Callable[..., None]
Summarise = Callable[[argparse.Namespace, list[Any], dict[str, float], bool], None]


def bench_main(args: argparse.Namespace, prefix: str, run_all: RunAll,
               summarise: Summarise) -> int:
    """The frame every side-by-side benchmark shares (POP3 here, IMAP in imap_bench.py): a
    temp folder, Dovecot when available, a SQLite file or a throw-away PostgreSQL database,
    ``run_all`` filling the rows, clean-up of every process and file on any exit."""
    # SIGTERM takes the same clean-up path as Ctrl-C; SIGINT is set explicitly because a
    # shell starting us in the background may have left it ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    use_dovecot = "dovecot" in args.servers and dovecot_available()
    if args.dovecot_required and not use_dovecot:
        print("dovecot requested but /usr/sbin/dovecot is missing or we are not root")
        return 2
    rows: list[Any] = []
    big: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, root, True)
        try:
            urls = []
            for backend in args.backends:
                if backend == "postgresql":
                    urls.append(stack.enter_context(postgres_database(args.postgres_url)))
                else:
                    urls.append(f"sqlite:///{root / mailwing_dir(args, backend)}"
                                "/data/mailwing.db")
            run_all(args, root, urls if args.rounds > 0 else urls[0], use_dovecot, rows, big,
                    stack)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping servers and cleaning up", flush=True)
            return 130
    summarise(args, rows, big, use_dovecot)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    take_turn(args.turns)
    if args.rounds > 0:
        return bench_main(args, "mailwing-bench-", run_rounds_all, summarise_rounds)
    return bench_main(args, "mailwing-bench-", run_all, summarise)


def dovecot_passwords(scheme: str, hashes: dict[str, str]) -> dict[str, str]:
    """Dovecot passwd-file entries for ``scheme`` (see --dovecot-schemes)."""
    if scheme == "argon2id":
        return {u: "{ARGON2ID}" + h for u, h in hashes.items()}
    if scheme == "ssha512":
        return {u: "{SSHA512}" + ssha512(PASSWORD) for u in hashes}
    if scheme == "plain":
        return {u: "{PLAIN}" + PASSWORD for u in hashes}
    raise SystemExit(f"unknown --dovecot-schemes entry {scheme!r}")


def scheme_label(scheme: str) -> str:
    return {"plain": "{PLAIN}", "argon2id": "{ARGON2ID} (= mailwing's cost)",
            "ssha512": "{SSHA512}"}.get(scheme, scheme)


def _pop3_measure(port: int, creds: list[tuple[str, str]], args: argparse.Namespace
                  ) -> Measure:
    r = run_load("127.0.0.1", port, creds, args.duration, args.load_procs)
    return Measure(r.sessions_per_s, r.percentile(50) * 1000, r.percentile(99) * 1000,
                   r.errors, r.first_error[:80] if r.first_error else "", ops=r.sessions)


def run_rounds_all(args: argparse.Namespace, root: Path, urls: list[str], use_dovecot: bool,
                   rows: list[Any], big: dict[str, float], stack: contextlib.ExitStack
                   ) -> None:
    """All servers running at once; the rounds of every client count interleaved
    (:func:`rounds.run_workloads`). Only warm-up before round 1 (one login per user and
    --warmup seconds of load): later rounds see whatever the caches hold, including after
    the idle pauses."""
    users = [f"user{i:04d}@{DOMAIN}" for i in range(max(args.clients))]
    rng = random.Random(1)
    mail = {u: [make_message(rng, u, n, args.size) for n in range(args.messages)] for u in users}
    if args.big_size:
        mail[BIG_USER] = [make_big(args.big_size)]
    workers = args.workers[0]
    servers = start_servers(args, root, urls, mail, stack, Mailwing,
                            Dovecot if use_dovecot else None)
    workloads = []
    for clients in args.clients:
        creds = [(users[i % len(users)], PASSWORD) for i in range(clients)]
        targets = []
        for label, port, pid, database in servers:  # mailwing: every worker sees every user
            warm_logins("127.0.0.1", port, creds,
                        rounds=8 * workers if label.startswith("mailwing") else 1)
            if args.warmup > 0:
                run_load("127.0.0.1", port, creds, args.warmup, args.load_procs)
            targets.append(Target(label, functools.partial(_pop3_measure, port, creds, args),
                                  pid, database))
        workloads.append(Workload(f"POP3 sessions, {clients} clients", targets, "sessions"))
    rows.extend(run_workloads(workloads, args))
    if args.big_size:
        for label, port in big_message_servers(servers):
            _, big[label] = retr_throughput("127.0.0.1", port, BIG_USER, PASSWORD)


def summarise_rounds(args: argparse.Namespace, rows: list[Any], big: dict[str, float],
                     use_dovecot: bool) -> None:
    print("\n== summary (target: mailwing >= 1.0x Dovecot at every client count; the "
          "{PLAIN} ratio compares the mail path, the {ARGON2ID} one equal password cost)")
    for title, results in rows:
        for ours, theirs in per_mailwing(results):
            print_summary(title, theirs, ours, "sessions", 1.0)
        pg_ratio_summary(results, "sessions", title)
    for label, rate in big.items():
        print(f"single-client RETR of {args.big_size / 1e6:.1f} MB: {label} {rate:.1f} MB/s"
              f"{'  (target >= 300 MB/s)' if label.startswith('mailwing') else ''}")


def run_all(args: argparse.Namespace, root: Path, url: str, use_dovecot: bool,
            rows: list[Row], big: dict[str, float], stack: contextlib.ExitStack) -> None:
    users = [f"user{i:04d}@{DOMAIN}" for i in range(max(args.clients))]
    rng = random.Random(1)
    t0 = time.monotonic()
    mail = {u: [make_message(rng, u, n, args.size) for n in range(args.messages)] for u in users}
    if args.big_size:
        mail[BIG_USER] = [make_big(args.big_size)]
    (root / "mailwing" / "data").mkdir(parents=True)
    mw = Mailwing(root / "mailwing", url)
    stack.callback(mw.stop)
    if "mailwing" in args.servers:
        hashes = mw.populate(mail)
        print(f"mailwing: {len(users)} users x {args.messages} messages of {args.size} octets "
              f"stored ({args.backend}) in {time.monotonic() - t0:.1f}s", flush=True)
    else:
        from mailwing.services.passwords import hash_password

        hashes = {u: hash_password(PASSWORD) for u in mail}
    params = hashes[users[0]].split("$")
    print(f"password scheme: mailwing {params[1]} ({params[3]}), checked once per worker "
          f"process then cached (auth.cache_ttl)", flush=True)
    print(HEADER, flush=True)
    for workers in args.workers if "mailwing" in args.servers else []:
        mw.start(workers)
        try:
            for clients in args.clients:
                row = Row("mailwing", f"{args.backend}, workers={workers}", clients,
                          measure(mw.port, users, clients, args, 8 * workers))
                rows.append(row)
                print_row(row)
            if args.big_size and workers == args.workers[0]:
                _, rate = retr_throughput("127.0.0.1", mw.port, BIG_USER, PASSWORD)
                big["mailwing"] = rate
        finally:
            mw.stop()
    if not use_dovecot:
        return
    for scheme_name in [s.strip().lower() for s in args.dovecot_schemes.split(",") if s.strip()]:
        if scheme_name == "argon2id":
            pw = {u: "{ARGON2ID}" + h for u, h in hashes.items()}
        elif scheme_name == "ssha512":
            pw = {u: "{SSHA512}" + ssha512(PASSWORD) for u in hashes}
        else:
            raise SystemExit(f"unknown --dovecot-schemes entry {scheme_name!r}")
        dv = Dovecot(root / f"dovecot-{scheme_name}", free_port(), max(args.clients))
        stack.callback(dv.stop)
        dv.set_users(pw)
        from mailwing.services.delivery import trace_headers

        for address, messages in mail.items():
            for data in messages:
                dv.add_message(address, trace_headers(address, None, DOMAIN) + data)
        dv.start()
        try:
            for clients in args.clients:
                row = Row("dovecot", f"maildir, {scheme_name}", clients,
                          # One round: Dovecot's auth cache is shared and holds no verdicts.
                          measure(dv.port, users, clients, args, 1))
                rows.append(row)
                print_row(row)
            if args.big_size and "dovecot" not in big:
                _, big["dovecot"] = retr_throughput("127.0.0.1", dv.port, BIG_USER, PASSWORD)
        finally:
            dv.stop()


def summarise(args: argparse.Namespace, rows: list[Row], big: dict[str, float],
              use_dovecot: bool) -> None:
    print()
    for name, rate in big.items():
        print(f"single client RETR of a {args.big_size / 1e6:.1f} MB message: {name} "
              f"{rate:.1f} MB/s")
    if not use_dovecot:
        print("Dovecot not run (not installed, not root, or not in --servers): no ratios")
        return
    print("\nratio mailwing / Dovecot (sessions per second; >1 means mailwing is faster):")
    for mw in (r for r in rows if r.server == "mailwing"):
        for dv in (r for r in rows if r.server == "dovecot" and r.clients == mw.clients):
            ratio = (mw.result.sessions_per_s / dv.result.sessions_per_s
                     if dv.result.sessions_per_s else float("inf"))
            print(f"  {mw.detail:28} vs {dv.detail:20} clients={mw.clients:<4} {ratio:6.2f}")
    if "mailwing" in big and big.get("dovecot"):
        print(f"  single-client RETR of {args.big_size / 1e6:.1f} MB: "
              f"{big['mailwing'] / big['dovecot']:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
