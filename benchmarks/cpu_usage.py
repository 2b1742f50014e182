"""CPU seconds of process trees, PostgreSQL backends and the load generator, from /proc.

Why (issue #9): on this 2-core machine the load generator shares the cores with the servers,
so at saturation throughput is set by the CPU each operation costs the server *and* the load
generator; two runs of the same server differ with the background load, CPU per operation far
less. So the side-by-side benchmarks (through :mod:`rounds`) report, per round and server,
the server's CPU ms per operation (its whole process tree: ``mailwing serve`` and its workers,
the Dovecot master with auth, imap-login, imap, pop3 ..., aiosmtpd), the PostgreSQL backends'
("db") when mailwing runs on PostgreSQL, the load generator's (the benchmark process and the
load processes it forks, not the server trees that are also its children) and the machine's
idle share. Linux only, standard library only.

How a tree is counted: the sum over the live processes of the tree of utime + stime (all
threads) + cutime + cstime. A process that exits during the window is counted by whoever
reaps it: while it is a zombie its own utime/stime, once reaped in its parent's cutime/cstime
(the kernel adds a reaped child's own and children's times to the parent's). So the
difference of two snapshots is right as long as the parent that reaps is in the tree (the
Dovecot master reaps its imap/pop3 processes; mailwing's parent its workers; the benchmark
its load processes). A process reparented to init (a daemonising grandchild) escapes.

PostgreSQL backends are counted by the database named in their command line
(``postgres: [cluster_name:] user dbname host(port) state``). A backend that exits within
the window takes its time to the postmaster's cutime, which is not attributable; mailwing
keeps a pool of connections, whose backends normally outlive a round.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuSample", "ProcInfo", "Usage", "backend_database", "cpu_sample", "idle_times",
           "postgres_cpu", "process_table", "tree_cpu", "tree_pids"]

_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcInfo:
    ppid: int
    own: float  # utime + stime, seconds (every thread of the process)
    children: float  # cutime + cstime, seconds: the children it has reaped
    comm: str


def _read_stat(pid: int) -> ProcInfo | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    head, _, tail = text.rpartition(")")  # comm may hold spaces and parentheses
    fields = tail.split()
    # fields[0] is field 3 (state) of proc(5): ppid is field 4, utime..cstime 14..17.
    return ProcInfo(int(fields[1]), (int(fields[11]) + int(fields[12])) / _TCK,
                    (int(fields[13]) + int(fields[14])) / _TCK,
                    head.partition("(")[2])


def process_table() -> dict[int, ProcInfo]:
    """Every process in /proc now (one pass; threads are inside their process)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read_stat(int(entry))
            if info is not None:
                table[int(entry)] = info
    return table


def tree_pids(table: dict[int, ProcInfo], roots: Iterable[int], exclude: Iterable[int] = ()
              ) -> set[int]:
    """The live pids of the trees of ``roots`` in ``table``, without the subtrees of
    ``exclude``."""
    kids: dict[int, list[int]] = {}
    for pid, info in table.items():
        kids.setdefault(info.ppid, []).append(pid)
    skip = set(exclude)
    found: set[int] = set()
    todo = [r for r in roots if r in table and r not in skip]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(k for k in kids.get(pid, ()) if k not in skip)
    return found


def tree_cpu(root: int, exclude: Iterable[int] = (), table: dict[int, ProcInfo] | None = None
             ) -> float:
    """CPU seconds (user + system) used so far by ``root``'s process tree, the children it
    has reaped included; the subtrees of the pids in ``exclude`` are left out (their CPU
    stays out only while they are alive: the one that reaps them gets it)."""
    table = process_table() if table is None else table
    return sum(table[p].own + table[p].children for p in tree_pids(table, [root], exclude))


def backend_database(cmdline: bytes) -> str | None:
    """The database of a PostgreSQL backend from its /proc cmdline (NUL-separated), else None:
    ``postgres: [cluster_name:] user database host(port)|[local] state``."""
    words = cmdline.replace(b"\0", b" ").split()
    if not words or words[0] != b"postgres:":
        return None
    if words[1:2] and words[1].endswith(b":"):  # cluster_name, e.g. "15/main:"
        del words[1]
    # background processes ("checkpointer", "background writer" ...) have no client address
    if len(words) < 4 or not (words[3].endswith(b")") or words[3] == b"[local]"):
        return None
    return words[2].decode(errors="replace")


def postgres_cpu(database: str, table: dict[int, ProcInfo] | None = None) -> float:
    """CPU seconds so far of the live PostgreSQL backends connected to ``database``."""
    table = process_table() if table is None else table
    total = 0.0
    for pid, info in table.items():
        if info.comm.startswith("postgres"):
            with contextlib.suppress(OSError):
                if backend_database(Path(f"/proc/{pid}/cmdline").read_bytes()) == database:
                    total += info.own
    return total


def idle_times() -> tuple[float, float]:
    """(idle + iowait, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        cols = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: inside user/nice]
    return float(cols[3] + cols[4]), float(sum(cols[:8]))


@dataclass(frozen=True)
class CpuSample:
    """One instant: CPU seconds per server tree, per database, of the load generator."""

    servers: dict[int, float]
    databases: dict[str, float]
    load: float
    idle: tuple[float, float]


def cpu_sample(servers: Iterable[int], databases: Iterable[str] = ()) -> CpuSample:
    """Snapshot the trees of ``servers``, the backends of ``databases`` and this process's
    own tree without the server trees (the load generator), from one pass over /proc."""
    servers = list(servers)
    table = process_table()
    return CpuSample({pid: tree_cpu(pid, table=table) for pid in servers},
                     {name: postgres_cpu(name, table) for name in databases},
                     tree_cpu(os.getpid(), servers, table), idle_times())


@dataclass(frozen=True)
class Usage:
    """What a window between two samples cost, in CPU seconds, and the idle share (0-1)."""

    server: float
    db: float | None
    load: float
    idle: float

    @staticmethod
    def between(a: CpuSample, b: CpuSample, server: int | None, database: str | None = None
                ) -> Usage:
        idle = b.idle[0] - a.idle[0]
        total = b.idle[1] - a.idle[1]
        return Usage(b.servers[server] - a.servers[server] if server is not None else 0.0,
                     b.databases[database] - a.databases[database] if database else None,
                     b.load - a.load, idle / total if total > 0 else 0.0)
