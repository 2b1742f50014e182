"""benchmarks/cpu_usage.py: a process tree's CPU is counted, also after a child exits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import cpu_usage  # noqa: E402
from rounds import Measure, with_cpu  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")

BURN = 0.4  # CPU seconds the grandchild burns

# A parent that forks a child burning BURN s of CPU, reaps it, says so, then idles: the
# Dovecot master and its short-lived imap processes in small.
PARENT = f"""
import os, sys, time
pid = os.fork()
if pid == 0:
    end = time.process_time() + {BURN}
    while time.process_time() < end:
        pass
    os._exit(0)
os.waitpid(pid, 0)
print("reaped", flush=True)
time.sleep(60)
"""


def test_tree_counts_a_child_that_exited_and_was_reaped() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE,
                              text=True)
    try:
        before = cpu_usage.tree_cpu(parent.pid)
        assert parent.stdout is not None and parent.stdout.readline() == "reaped\n"
        after = cpu_usage.tree_cpu(parent.pid)
        assert after - before >= BURN * 0.8
        # ... and the benchmark's own tree without the server tree does not count it
        mine = cpu_usage.tree_cpu(os.getpid(), exclude=[parent.pid])
        assert cpu_usage.tree_cpu(os.getpid()) - mine >= BURN * 0.8
    finally:
        parent.kill()
        parent.wait()


def test_live_child_and_the_one_reaped_by_the_root() -> None:
    mine = cpu_usage.tree_cpu(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", (
        f"import time\nend = time.process_time() + {BURN}\n"
        "while time.process_time() < end: pass\nprint('done', flush=True)\ntime.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        start = cpu_usage.cpu_sample([child.pid])
        assert child.stdout is not None and child.stdout.readline() == "done\n"
        live = cpu_usage.cpu_sample([child.pid])
        used = cpu_usage.Usage.between(start, live, child.pid)
        assert used.server >= BURN * 0.8
        assert 0.0 <= used.idle <= 1.0
    finally:
        child.kill()
        child.wait()
    # reaped by this process: the time moves to our cutime, our tree's total keeps it
    assert cpu_usage.tree_cpu(os.getpid()) - mine >= BURN * 0.8


def test_missing_root_counts_nothing() -> None:
    assert cpu_usage.tree_cpu(2**22 + 12345) == 0.0


def test_postgres_cpu_of_an_unknown_database_is_zero() -> None:
    assert cpu_usage.postgres_cpu("no_such_database_here") == 0.0


@pytest.mark.parametrize(("cmdline", "database"), [
    (b"postgres: 15/main: postgres mailwing_bench_1 127.0.0.1(35530) idle\0", "mailwing_bench_1"),
    (b"postgres: alice mail [local] SELECT\0", "mail"),  # over a Unix socket
    (b"postgres: bob mail 10.0.0.1(5000) idle in transaction\0", "mail"),
    (b"postgres: 15/main: checkpointer \0", None),
    (b"postgres: background writer\0", None),
    (b"/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql\0", None),
    (b"", None),
])
def test_backend_database(cmdline: bytes, database: str | None) -> None:
    assert cpu_usage.backend_database(cmdline) == database


def test_with_cpu_divides_by_operations() -> None:
    used = cpu_usage.Usage(server=2.0, db=0.5, load=1.0, idle=0.25)
    m = with_cpu(Measure(100.0, 1.0, 2.0, ops=1000), used)
    assert (m.server_cpu_ms, m.db_cpu_ms, m.load_cpu_ms, m.idle_pct) == (2.0, 0.5, 1.0, 25.0)
    assert with_cpu(Measure(1.0, 1.0, 1.0), used).server_cpu_ms is None  # ops unknown


def test_idle_times_grow() -> None:
    idle0, total0 = cpu_usage.idle_times()
    time.sleep(0.05)
    idle1, total1 = cpu_usage.idle_times()
    assert total1 > total0 and 0 <= idle1 - idle0 <= total1 - total0
