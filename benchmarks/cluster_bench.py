"""Throughput through HAProxy with one node and with two, and PostgreSQL's share of the work.

Run as root from the repository root: ``.venv/bin/python benchmarks/cluster_bench.py``
(``--duration``, ``--clients``). It builds the cluster tier's set-up (tests/cluster/harness:
network namespaces, HAProxy with send-proxy-v2, two ``mailwing serve`` nodes on the host's
PostgreSQL), fills 20 mailboxes with 20 messages of 4 KB, then measures, first with node2
stopped and then with both nodes:

* SMTP intake: 4 KB messages, 10 per connection, through the balanced SMTP frontend
  (benchmarks/smtp_load.py), in messages/s;
* IMAP sessions: LOGIN, SELECT, FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE), FETCH 1:* BODY.PEEK[],
  STORE, LOGOUT (benchmarks/imap_load.py), in sessions/s and commands/s;

and, for each run, the CPU seconds used by PostgreSQL (every ``postgres`` process), by the
mailwing nodes and by HAProxy (from /proc), PostgreSQL's share of that, its CPU time per
message or command, and transactions per message or command (pg_stat_database).

This machine has 2 cores shared by everything (load generator included), so two nodes cannot
double the figures here; what the run shows is where the CPU goes, which is what a capacity
estimate for more nodes on more cores needs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import imap_load
import smtp_load
from tests.cluster.harness import LB, PASSWORD, Cluster, lb_port, running_cluster

USERS = [f"bench{i}@cluster.test" for i in range(20)]
CLK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def _pids(name: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (name == "mailwing" and b"mailwing\x00serve" in cmdline) or comm == name:
                out.append(int(entry.name))
    return out


class CpuMeter:
    """CPU seconds of PostgreSQL, the nodes and HAProxy between start() and stop(): the
    growth of each process alive at stop (new ones, like fresh PostgreSQL backends, from
    zero); a process that ended meanwhile is not counted after its last sample."""

    names = ("postgres", "mailwing", "haproxy")

    def start(self) -> None:
        self.before = {pid: _cpu_of(pid) for n in self.names for pid in _pids(n)}

    def stop(self) -> dict[str, float]:
        return {n: sum(_cpu_of(pid) - self.before.get(pid, 0.0) for pid in _pids(n))
                for n in self.names}


async def _db_counter(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"))
    finally:
        await conn.close()


async def _fill(url: str, root: Path) -> None:
    from mailwing.storage import Delivery, open_storage

    store = await open_storage(url, data_dir=root / "host-data")
    try:
        for user in USERS:
            u = await store.get_user(user)
            assert u is not None
            inbox = await store.get_mailbox(u.id, "INBOX")
            assert inbox is not None
            for i in range(20):
                body = (f"From: a@remote.test\r\nTo: {user}\r\nSubject: bench {i}\r\n"
                        f"Message-ID: <{user}-{i}@bench>\r\n\r\n").encode() + b"x" * 4000 + b"\r\n"
                info = await store.store_content(body)
                await store.append(info, [Delivery(inbox.id)])
    finally:
        await store.close()


def measure(cluster: Cluster, label: str, duration: float, clients: int) -> list[str]:
    rows = []
    meter = CpuMeter()
    # SMTP intake
    xacts = asyncio.run(_db_counter(cluster.host_url))
    meter.start()
    spec = smtp_load.LoadSpec(host=LB, port=lb_port("smtp"), recipients=tuple(USERS),
                              size=4096, duration=duration, max_messages=10**7)
    result = smtp_load.run_load(spec, clients)
    cpu = meter.stop()
    xacts = asyncio.run(_db_counter(cluster.host_url)) - xacts
    rows.append(_row(label, "SMTP intake (msgs/s)", result.messages / result.elapsed,
                     result.messages, result.errors, cpu, xacts))
    # IMAP sessions
    xacts = asyncio.run(_db_counter(cluster.host_url))
    creds = [(USERS[i % len(USERS)], PASSWORD) for i in range(clients)]
    for _ in range(3):  # every user on every node: each node's login cache is warm
        imap_load.prime(LB, lb_port("imap"), creds)
    meter.start()
    res = imap_load.run_load(LB, lb_port("imap"), creds, duration)
    cpu = meter.stop()
    xacts = asyncio.run(_db_counter(cluster.host_url)) - xacts
    rows.append(_row(label, "IMAP sessions (sessions/s)", res.sessions_per_s, res.ops,
                     res.errors, cpu, xacts, ops_label=f"{res.ops_per_s:.0f} cmd/s"))
    return rows


def _row(label: str, what: str, rate: float, units: int, errors: int, cpu: dict[str, float],
         xacts: int, ops_label: str = "") -> str:
    total = sum(cpu.values()) or 1e-9
    per = 1000 * cpu["postgres"] / units if units else 0.0
    return (f"| {label} | {what} | {rate:.1f} {ops_label} | {errors} | "
            f"{cpu['postgres']:.1f} / {cpu['mailwing']:.1f} / {cpu['haproxy']:.1f} | "
            f"{100 * cpu['postgres'] / total:.0f} % | {per:.2f} ms | "
            f"{xacts / units if units else 0:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    overrides = {"server": {"max_connections_per_ip": 100000},
                 "auth": {"max_failures_per_ip": 100000}}
    with tempfile.TemporaryDirectory(prefix="mailwing-cluster-bench-") as tmp, \
            running_cluster(Path(tmp), overrides) as cluster:
        for user in USERS:
            cluster.add_user(user)
        asyncio.run(_fill(cluster.host_url, cluster.root))
        header = ("| nodes | workload | rate | errors | CPU s: PostgreSQL / nodes / HAProxy "
                  "| PostgreSQL share | PostgreSQL CPU per msg or command | transactions per "
                  "msg or command |\n|---|---|---|---|---|---|---|---|")
        rows = []
        cluster.nodes["node2"].stop()
        time.sleep(1.5)  # HAProxy marks it down
        rows += measure(cluster, "1", args.duration, args.clients)
        cluster.nodes["node2"].start()
        time.sleep(1.5)
        rows += measure(cluster, "2", args.duration, args.clients)
        print(f"\n{args.clients} clients, {args.duration:.0f} s per run, "
              f"{os.cpu_count()} cores\n")
        print(header)
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
