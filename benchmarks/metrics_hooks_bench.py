"""Cost of the metrics hooks per call, in prometheus-client's multiprocess mode (issue #9).

Prints nanoseconds per call for what a command and a storage call record: the hooks of
:mod:`mailwing.services.metrics` (plain in-process additions), the prometheus-client calls
the hooks used to make directly (``inc``/``observe`` on a child: lock, ``os.getpid()``,
mmap write), and the two ways a flush can publish a histogram's deltas (one ``inc`` per
bucket as the module does, against replaying ``observe`` once per observation). Runs in a
throwaway multiprocess folder; single process, so the figures are per core.

    python benchmarks/metrics_hooks_bench.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def per_call(fn: Callable[[], None], calls: int) -> float:
    """Best of three: nanoseconds per call of ``fn``."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    calls = args.calls
    with tempfile.TemporaryDirectory() as folder:
        from mailwing.services import metrics

        metrics.setup({"imap": "imap"}, Path(folder))
        fam = metrics._families
        assert fam is not None
        seconds = [random.lognormvariate(-7, 1.5) for _ in range(1024)]
        it = iter(range(1 << 62))

        def value() -> float:
            return seconds[next(it) & 1023]

        count_child = fam.commands.labels("imap", "NOOP")
        hist_child = fam.command_seconds.labels("imap", "NOOP")
        rows = [
            ("hook: command count", per_call(lambda: metrics.command("imap", "NOOP", None),
                                             calls)),
            ("hook: command latency", per_call(
                lambda: metrics.command("imap", "NOOP", value()), calls)),
            ("hook: storage_op", per_call(lambda: metrics.storage_op("get_user", value()),
                                          calls)),
            ("prometheus-client: Counter.inc", per_call(count_child.inc, calls)),
            ("prometheus-client: Histogram.observe", per_call(
                lambda: hist_child.observe(value()), calls)),
            ("(value() alone, included above)", per_call(value, calls)),
        ]
        for name, ns in rows:
            print(f"{name:40s} {ns:8.0f} ns/call")

        # one flush after n observations: per-bucket inc (the module) vs replaying observe
        for n in (100, 10_000):
            local = metrics._histogram("storage_seconds", "bench")
            started = time.perf_counter()
            for i in range(n):
                local.observe(seconds[i & 1023])
            recorded = time.perf_counter() - started
            started = time.perf_counter()
            metrics.flush()
            flushed = time.perf_counter() - started
            replay_child = fam.storage_seconds.labels("replay")
            started = time.perf_counter()
            for i in range(n):
                replay_child.observe(seconds[i & 1023])
            replayed = time.perf_counter() - started
            print(f"{n:6d} observations: recorded {recorded * 1e6:8.0f} us, flushed "
                  f"{flushed * 1e6:6.0f} us (per-bucket inc); replaying observe would take "
                  f"{replayed * 1e6:8.0f} us")


if __name__ == "__main__":
    main()
