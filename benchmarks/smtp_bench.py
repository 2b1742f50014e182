"""SMTP delivery throughput of mailwing, side by side with a durable aiosmtpd server.

Run ``.venv/bin/python benchmarks/smtp_bench.py --help``; benchmarks/README.md (section SMTP)
says how to read the output.

What is measured, per configuration (server x workers x concurrent clients x message size):
clients send messages to the MX listener (no AUTH, local recipients, as other MTAs do) with
pipelined MAIL/RCPT/DATA groups (RFC 2920) for ``--duration`` seconds or ``--max-messages``,
after ``--warmup`` seconds of the same load whose results are thrown away. Reported: messages
per second, MB/s, and the p50/p99 of the time from the final ``.`` to the ``250`` (the part of
RFC 5321 4.1.1.4 where the server makes the message durable).

The reference is aiosmtpd (if installed: it is not a mailwing dependency, ``pip install
aiosmtpd``) whose handler writes each message to a Maildir file, fsyncs the file and the
directory and only then answers 250 (see :mod:`smtp_aiosmtpd`): the same promise mailwing makes.
The issue's target is mailwing >= 2x aiosmtpd's messages/s at 10 and 50 clients, 4 KB.

Rounds (the default, ``--rounds 5``; :mod:`rounds`): mailwing with the inbound checks ON
(SPF of MAIL FROM and HELO, DKIM, DMARC; the default), mailwing with the checks off and
aiosmtpd all run at once, and take turns, round after round, with idle pauses longer than any
cache TTL after some rounds. The checks ask a DNS server that this script starts on loopback
(:mod:`tests.dnsserver`, records with a 60 s TTL, negative answers with an SOA): SPF and DMARC
records for the sender domain ``sender.example`` and the HELO name, as a site's caching
resolver would hold them. One message per connection by default (``--per-connection``), as
the issue measured: every message pays the connection, EHLO and the HELO check.

Flat over time (``--fresh-control``, SQLite): a second mailwing server with the same settings
takes its turn in every round, and after each of its rounds its messages are deleted, so its
database stays small while the first one's grows. Both run the same code on the same machine
in the same minutes, so if both lose as much from round 1 to the last, the machine slowed
down; if only the growing one does, the server's growing state costs it.

The load generator runs in ``--load-procs`` processes of its own. Everything started here
(servers, load processes, temp folders, a PostgreSQL database) is removed at the end, on Ctrl-C
and SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pop3_bench import (
    add_backend_option,
    backends_of,
    database_name,
    free_port,
    parse_ints,
    postgres_database,
)
from pop3load import LoadResult
from rounds import (
    DNS_TTL,
    Measure,
    Target,
    Workload,
    add_round_options,
    print_summary,
    run_workloads,
    take_turn,
)
from smtp_load import LoadSpec, run_load

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.dnsserver

DOMAIN = "bench.test"
PASSWORD = "bench-password"


def wait_for_greeting(port: int, proc: subprocess.Popen[bytes], log: Path,
                      timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), \
                socket.create_connection(("127.0.0.1", port), 0.5) as s:
            s.settimeout(5)
            if s.recv(100).startswith(b"220"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"no SMTP greeting on port {port}")


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL of the whole process group (worker processes included)."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class ServerProcess:
    """A server in a process group of its own, logging into its folder."""

    root: Path

    def __post_init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, cmd: list[str], log_name: str) -> None:
        log = self.root / log_name
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_for_greeting(self.port, self.proc, log)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@dataclass
class Mailwing(ServerProcess):
    """``mailwing serve`` with only the MX listener, in a folder of its own."""

    database_url: str = ""
    users: tuple[str, ...] = ()
    checks: bool = False
    dns: str = "127.0.0.1:9"  # nothing listens there: no lookup may leave the machine

    @property
    def config(self) -> Path:
        return self.root / "mailwing.toml"

    def start(self, workers: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        listeners = "\n".join(f"[{name}]\nport = {self.port if name == 'smtp' else 0}\n"
                              for name in ("smtp", "submission", "smtps", "pop3", "pop3s",
                                           "imap", "imaps", "admin"))
        self.config.write_text(
            f'[server]\nhostname = "mx.{DOMAIN}"\nlisten = ["127.0.0.1"]\n'
            f'data_dir = "{self.root / "data"}"\nworkers = {workers}\nlog_level = "warning"\n'
            f'max_connections_per_ip = 100000\n\n[database]\nurl = "{self.database_url}"\n\n'
            + ("" if self.checks else  # the default is on; aiosmtpd checks nothing
               "[auth]\ncheck_spf = false\ncheck_dkim = false\ncheck_dmarc = false\n\n")
            + f'[outbound]\nenabled = false\ndns_resolver = "{self.dns}"\n\n'
            f"{listeners}")
        subprocess.run([sys.executable, "-m", "mailwing", "--config", str(self.config),
                        "db", "upgrade"], check=True, capture_output=True, timeout=300)
        asyncio.run(self._add_users())
        self.spawn([sys.executable, "-m", "mailwing", "serve", "--config", str(self.config)],
                   "server.log")

    async def _add_users(self) -> None:
        from mailwing.services.passwords import hash_password
        from mailwing.storage import open_storage

        store = await open_storage(self.database_url, data_dir=self.root / "data")
        try:
            for address in self.users:
                if await store.get_user(address) is None:
                    await store.add_user(address, hash_password(PASSWORD), create_domain=True)
        finally:
            await store.close()


@dataclass
class Aiosmtpd(ServerProcess):
    """The durable aiosmtpd reference (:mod:`smtp_aiosmtpd`)."""

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        script = Path(__file__).resolve().parent / "smtp_aiosmtpd.py"
        self.spawn([sys.executable, str(script), "--port", str(self.port),
                    "--maildir", str(self.root / "Maildir")], "aiosmtpd.log")

    def empty_maildir(self) -> None:
        """Between runs: a growing directory must not slow the next configuration down."""
        for path in (self.root / "Maildir" / "new").iterdir():
            path.unlink()


# -- running and reporting ----------------------------------------------------------------------

@dataclass
class Row:
    server: str
    detail: str
    clients: int
    size: int
    result: LoadResult


HEADER = (f"{'server':9} {'configuration':22} {'size':>6} {'clients':>7} {'msgs/s':>9} "
          f"{'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'sent':>7} {'errors':>6} {'loadgen':>7}")


def size_label(size: int) -> str:
    return f"{size // (1024 * 1024)}MB" if size >= 1024 * 1024 else f"{size // 1024}KB"


def print_row(row: Row) -> None:
    r = row.result
    print(f"{row.server:9} {row.detail:22} {size_label(row.size):>6} {row.clients:>7} "
          f"{r.messages_per_s:>9.1f} {r.mb_per_s:>7.1f} {r.percentile(50) * 1000:>8.1f} "
          f"{r.percentile(99) * 1000:>8.1f} {r.messages:>7} {r.errors:>6} "
          f"{r.client_cpu_share:>7.0%}", flush=True)
    if r.first_error:
        print(f"          first error: {r.first_error}", flush=True)


def measure_all(server: str, detail: str, port: int, users: list[str],
                args: argparse.Namespace, rows: list[Row], between: Callable[[], None]) -> None:
    for size in args.sizes:
        for clients in args.clients:
            cap = args.max_messages if size < 100_000 else max(1, args.max_messages // 20)
            spec = LoadSpec("127.0.0.1", port, tuple(users), size, args.duration, cap)
            if args.warmup > 0:
                run_load(LoadSpec(**{**spec.__dict__, "duration": args.warmup}), clients,
                         args.load_procs)
            row = Row(server, detail, clients, size, run_load(spec, clients, args.load_procs))
            rows.append(row)
            print_row(row)
            between()


def summarise(rows: list[Row]) -> None:
    ref = {(r.clients, r.size): r.result.messages_per_s for r in rows if r.server == "aiosmtpd"}
    if not ref:
        print("\n(no aiosmtpd rows: pip install aiosmtpd into .venv for the ratio)")
        return
    print("\nmailwing / aiosmtpd (messages/s; target >= 2.0 at 10 and 50 clients, 4KB):")
    for r in rows:
        base = ref.get((r.clients, r.size))
        if r.server == "mailwing" and base:
            mark = ""
            if r.size < 100_000 and r.clients in (10, 50):
                mark = "  meets target" if r.result.messages_per_s >= 2 * base else "  BELOW"
            print(f"  {r.detail:22} {size_label(r.size):>6} {r.clients:>4} clients: "
                  f"{r.result.messages_per_s / base:5.2f}x{mark}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clients", type=parse_ints, default=[10, 50],
                   help="concurrent clients, comma-separated (one configuration each)")
    p.add_argument("--sizes", type=parse_ints, default=[4096],
                   help="message sizes in octets, comma-separated")
    p.add_argument("--workers", type=parse_ints, default=[2],
                   help="mailwing server.workers values, comma-separated (rounds: the first)")
    p.add_argument("--per-connection", type=int, default=1,
                   help="messages per SMTP connection (1: as the issue measured)")
    p.add_argument("--checks", default="on,off",
                   help="rounds: mailwing with the inbound checks on and/or off")
    add_round_options(p)
    p.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    p.add_argument("--max-messages", type=int, default=20000,
                   help="bound per run for small messages (1/20 of it for >= 100 KB)")
    p.add_argument("--users", type=int, default=5, help="local recipients, round-robin")
    add_backend_option(p)
    p.add_argument("--postgres-url", default=os.environ.get(
        "MAILWING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="administrative URL used to create and drop the benchmark database")
    p.add_argument("--load-procs", type=int, default=1,
                   help="processes the load generator spreads its clients over")
    p.add_argument("--servers", default="mailwing,aiosmtpd",
                   help="which servers to run; aiosmtpd is skipped when not installed")
    p.add_argument("--fresh-control", action="store_true",
                   help="SQLite: add a mailwing server whose messages are deleted after each "
                        "of its rounds (the machine's drift, for the flat-over-time runs)")
    p.add_argument("--keep", action="store_true", help="keep the temp folder for inspection")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 3600 or args.max_messages < 1 or min(args.sizes) < 512:
        p.error("--duration must be in (0, 3600], --max-messages >= 1, sizes >= 512")
    backends_of(args)
    if args.fresh_control and args.backends != ["sqlite"]:
        p.error("--fresh-control needs --backend sqlite")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def start_dns() -> object:
    """The loopback DNS the checks ask: SPF and DMARC for the sender and the HELO name."""
    from tests.dnsserver import DnsServer

    dns = DnsServer()
    dns.ttl = DNS_TTL
    dns.negative_ttl = DNS_TTL
    dns.load('sender.example. TXT "v=spf1 ip4:127.0.0.0/8 -all"\n'
             'load.sender.example. TXT "v=spf1 ip4:127.0.0.0/8 -all"\n'
             '_dmarc.sender.example. TXT "v=DMARC1; p=none"\n'
             f'_dmarc.{DOMAIN}. TXT "v=DMARC1; p=none"\n')
    return dns.start()


def empty_database(path: Path) -> Callable[[], None]:
    """After a round of the fresh control: delete every message, so its B-trees shrink back
    to nothing (freed pages are reused) while the server keeps running. The server holds no
    transaction between rounds; its SMTP intake keeps no state about stored mail."""
    def empty() -> None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
            with db:
                db.execute("DELETE FROM mail")
                db.execute("DELETE FROM contents")
                db.execute("DELETE FROM inline_contents")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return empty


def _measure(spec: LoadSpec, clients: int, procs: int) -> Measure:
    r = run_load(spec, clients, procs)
    return Measure(r.messages_per_s, r.percentile(50) * 1000, r.percentile(99) * 1000,
                   r.errors, r.first_error[:80] if r.first_error else "", ops=r.messages)


def main_rounds(args: argparse.Namespace) -> int:
    """Every server at once; rounds alternate between them (module docstring)."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="mailwing-smtp-bench-"))
    users = [f"user{i}@{DOMAIN}" for i in range(args.users)]
    workers = args.workers[0]
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    summary: list[str] = []
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, root, True)
        try:
            dns = start_dns()
            stack.callback(dns.stop)  # type: ignore[attr-defined]
            # (label, port, tidying after a round, root pid of the server's process tree,
            # PostgreSQL database or None)
            servers: list[tuple[str, int, Callable[[], None] | None, int | None,
                                str | None]] = []
            both = len(args.backends) > 1

            def launch(folder: Path, url: str, mode: str, label: str,
                       after: Callable[[], None] | None = None) -> None:
                """Start a mailwing server (stopped at the end) and add it to ``servers``."""
                mw = Mailwing(folder, url, tuple(users), checks=mode == "on",
                              dns=dns.address)  # type: ignore[attr-defined]
                stack.callback(mw.stop)
                mw.start(workers)
                servers.append((label, mw.port, after, mw.proc.pid if mw.proc else None,
                                database_name(url)))

            for backend in args.backends:
                for mode in checks:
                    folder = root / (f"mw-{backend}-{mode}" if both else f"mw-{mode}")
                    if backend == "postgresql":
                        url = stack.enter_context(postgres_database(args.postgres_url))
                    else:
                        url = f"sqlite:///{folder / 'data' / 'mailwing.db'}"
                    label = f"mailwing {backend} checks {mode}" if both else \
                        f"mailwing checks {mode}"
                    launch(folder, url, mode, label)
                    if args.fresh_control:
                        db = root / f"mw-{mode}-fresh" / "data" / "mailwing.db"
                        launch(db.parent.parent, f"sqlite:///{db}", mode,
                               f"{label} fresh control", empty_database(db))
            if "aiosmtpd" in args.servers and importlib.util.find_spec("aiosmtpd"):
                ref = Aiosmtpd(root / "aiosmtpd")
                stack.callback(ref.stop)
                ref.start()
                servers.append(("aiosmtpd maildir+fsync", ref.port, ref.empty_maildir,
                                ref.proc.pid if ref.proc else None, None))
            workloads = []
            for size in args.sizes:
                for clients in args.clients:
                    targets = []
                    for label, port, between, pid, database in servers:
                        spec = LoadSpec("127.0.0.1", port, tuple(users), size, args.duration,
                                        args.max_messages, per_connection=args.per_connection)
                        if args.warmup > 0:
                            run_load(LoadSpec(**{**spec.__dict__, "duration": args.warmup}),
                                     clients, args.load_procs)

                        def one(spec: LoadSpec = spec, clients: int = clients) -> Measure:
                            return _measure(spec, clients, args.load_procs)

                        targets.append(Target(label, one, pid, database, between))
                    workloads.append(Workload(
                        f"SMTP intake {size_label(size)}, {clients} clients, "
                        f"{args.backend}, workers={workers}", targets, "msgs"))
            for title, results in run_workloads(workloads, args):
                for label, *_ in servers:
                    if label.startswith("mailwing") and not label.endswith("control"):
                        summary += print_summary(
                            f"{title} [{label}]", {label: results[label], **{
                                k: v for k, v in results.items()
                                if not k.startswith("mailwing")}}, label, "msgs",
                            2.0 if label.endswith("on") else None)
                        control = f"{label} fresh control"
                        if control in results:  # the machine's drift: no target here
                            summary += print_summary(
                                f"{title} [{label}, growing / fresh]",
                                {label: results[label], control: results[control]},
                                label, "msgs")
                if both:
                    for mode in checks:
                        pg, lite = (f"mailwing {b} checks {mode}"
                                    for b in ("postgresql", "sqlite"))
                        summary += print_summary(
                            f"{title}, checks {mode} [PostgreSQL / SQLite]",
                            {pg: results[pg], lite: results[lite]}, pg, "msgs", 0.8)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping servers and cleaning up", flush=True)
            return 130
    print("\n== summary (target: checks on >= 2.0x aiosmtpd, p99 < 100 ms)")
    print("\n".join(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    take_turn(args.turns)
    if args.rounds > 0:
        return main_rounds(args)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="mailwing-smtp-bench-"))
    users = [f"user{i}@{DOMAIN}" for i in range(args.users)]
    rows: list[Row] = []
    print(HEADER, flush=True)
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, root, True)
        try:
            if "mailwing" in args.servers:
                for workers in args.workers:
                    # A fresh store per workers value: the same starting point for each.
                    if args.backend == "postgresql":
                        url = stack.enter_context(postgres_database(args.postgres_url))
                    else:
                        url = f"sqlite:///{root / f'mw{workers}' / 'data' / 'mailwing.db'}"
                    mw = Mailwing(root / f"mw{workers}", url, tuple(users))
                    stack.callback(mw.stop)
                    mw.start(workers)
                    measure_all("mailwing", f"{args.backend}, workers={workers}", mw.port,
                                users, args, rows, lambda: None)
                    mw.stop()
                    if not args.keep:
                        shutil.rmtree(mw.root, ignore_errors=True)
            if "aiosmtpd" in args.servers and importlib.util.find_spec("aiosmtpd"):
                ref = Aiosmtpd(root / "aiosmtpd")
                stack.callback(ref.stop)
                ref.start()
                measure_all("aiosmtpd", "maildir+fsync", ref.port, users, args, rows,
                            ref.empty_maildir)
                ref.stop()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping servers and cleaning up", flush=True)
            return 130
    summarise(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
