"""Consecutive measured rounds, alternating between servers, with pauses: figures that last.

Why (issue #9): a figure taken in the first 20 seconds after a warm-up can hide a cache that
expires (the password cache, the DNS cache), and two servers measured one after the other on a
shared machine see different background load. So every side-by-side benchmark here runs
``--rounds`` rounds; in each round every server gets the same load once (mailwing first, then
the references, all servers running the whole time), and after the rounds listed in
``--pause-after`` everything stays idle for ``--pause`` seconds, longer than any cache TTL,
so the round after it starts cold. The report gives throughput and p50/p99 per round, the ratio
of medians over the rounds and the worst round's ratio.

A benchmark's workloads (its client counts, the mixed load) share the rounds
(:func:`run_workloads`): round ``n`` of every workload runs before round ``n + 1`` of any, so
one pause lies between the rounds of all of them. With the hour-long pause of the defaults a
run takes a few hours instead of a few hours per workload. ``--turns FILE`` goes further: the
POP3, IMAP and SMTP benchmarks started together take turns on a lock file, each holding it
except while it idles, so their pauses overlap and none measures while another does.

CPU per operation (:mod:`cpu_usage`): when a :class:`Target` names its server's root pid and
its measure counts ``ops``, every round also shows the CPU milliseconds per operation of the
server's process tree, of the PostgreSQL backends of ``Target.database`` (db), of the load
generator (this process and its load processes, without the server trees) and the machine's
idle share during the round; the summary gives their medians and the server CPU ratio.
On a shared 2-core machine these move much less than the rates do.

A flat-over-time run is the same machinery with one server: ``--rounds 10 --duration 60
--pause 0`` gives minute 1 to minute 10 (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from cpu_usage import Usage, cpu_sample

__all__ = ["Measure", "Target", "Workload", "add_round_options", "default_pause",
           "print_summary", "run_rounds", "run_workloads", "take_turn"]

DNS_TTL = 60  # seconds: the TTL the benchmarks' own DNS server gives its records


@dataclass(frozen=True)
class Measure:
    """One round of one server: the rate (``unit`` per second) and latencies in ms."""

    rate: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    note: str = ""
    ops: int | None = None  # operations completed (the CPU figures are per operation)
    server_cpu_ms: float | None = None  # CPU ms per operation of the server's process tree
    db_cpu_ms: float | None = None  # ... of the PostgreSQL backends of Target.database
    load_cpu_ms: float | None = None  # ... of the load generator
    idle_pct: float | None = None  # share of all CPUs idle (or in iowait) during the round


@dataclass
class Target:
    label: str  # "mailwing", "dovecot {PLAIN}", "aiosmtpd" ...
    run: Callable[[], Measure]  # one measured round (warm-up is the caller's business)
    pid: int | None = None  # root of the server's process tree: CPU columns (cpu_usage)
    database: str | None = None  # PostgreSQL database whose backends count as "db"
    after: Callable[[], None] | None = None  # tidying after a round, outside the CPU window


def with_cpu(m: Measure, used: Usage) -> Measure:
    """``m`` with the CPU figures of ``used`` per operation (unchanged without ``m.ops``)."""
    if not m.ops:
        return m
    per = 1000.0 / m.ops
    return replace(m, server_cpu_ms=used.server * per,
                   db_cpu_ms=None if used.db is None else used.db * per,
                   load_cpu_ms=used.load * per, idle_pct=used.idle * 100)


def _cell(value: float | None, width: int, digits: int = 3) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def default_pause() -> float:
    """Longer than any cache TTL of mailwing's default settings (and our DNS records)."""
    from mailwing.config import Settings

    return max(Settings().auth.cache_ttl, DNS_TTL) + 5.0


def add_round_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rounds", type=int, default=5,
                   help="consecutive measured rounds per configuration, servers alternating "
                        "(0: the old one-shot runs)")
    p.add_argument("--pause", type=float, default=None,
                   help="idle seconds after the rounds in --pause-after (default: the longest "
                        "cache TTL + 5 s: auth.cache_ttl, the DNS TTL)")
    p.add_argument("--pause-after", default="2,4",
                   help="rounds after which to pause, comma-separated (empty: never)")
    p.add_argument("--settle", type=float, default=3.0,
                   help="idle seconds between two servers' turns (work a server still does "
                        "for clients that have gone, e.g. Dovecot's queued Argon2id checks, "
                        "must not land in the next server's turn)")
    p.add_argument("--turns", default=None, metavar="FILE",
                   help="a lock file shared with other benchmarks started together: each "
                        "holds it from set-up to exit except while it idles in a pause, so "
                        "they measure in turns and their pauses overlap")


def _pause_rounds(text: str) -> set[int]:
    return {int(x) for x in text.split(",") if x.strip()}


@dataclass
class Workload:
    """One row of a benchmark: a load (``title``) that every target gets once per round."""

    title: str
    targets: list[Target]
    unit: str  # "cmds", "sessions", "msgs"


_turn: int | None = None  # the --turns lock file's descriptor while this process holds it


def take_turn(path: str | None) -> None:
    """Wait for, then hold, the ``--turns`` lock (an ``flock`` on ``path``; ``flock(1)`` on
    the same file takes part). A benchmark holds it from set-up to exit and lets go only
    while it idles in a pause, so that several benchmarks started together take turns: one
    measures (or fills its database) while the others idle, and their pauses overlap."""
    global _turn
    if not path or _turn is not None:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _turn = fd


def _idle(seconds: float, turns: str | None) -> None:
    """Sleep through a pause without the turns lock, and take it back after."""
    global _turn
    if _turn is not None:
        os.close(_turn)  # closing the descriptor releases the flock
        _turn = None
    time.sleep(seconds)
    take_turn(turns)


def run_rounds(title: str, targets: list[Target], args: argparse.Namespace, unit: str
               ) -> dict[str, list[Measure]]:
    """Run ``args.rounds`` rounds over ``targets``; print each measure as it comes."""
    return run_workloads([Workload(title, targets, unit)], args)[0][1]


def run_workloads(workloads: list[Workload], args: argparse.Namespace
                  ) -> list[tuple[str, dict[str, list[Measure]]]]:
    """Rounds over several workloads, interleaved: round ``n`` of every workload runs before
    round ``n + 1`` of any, so one pause (``--pause-after``) lies between the rounds of all
    of them, and a run with the issue's hour-long pauses takes hours, not hours per client
    count. Each measure is printed as it comes, tagged with its workload's number."""
    pause = default_pause() if args.pause is None else args.pause
    after = _pause_rounds(args.pause_after)
    results = [{t.label: [] for t in w.targets} for w in workloads]
    pids = sorted({t.pid for w in workloads for t in w.targets if t.pid is not None})
    databases = sorted({t.database for w in workloads for t in w.targets if t.database})
    tagged = len(workloads) > 1
    for i, w in enumerate(workloads, 1):
        print(f"\n== {f'[{i}] ' if tagged else ''}{w.title}: {args.rounds} rounds of "
              f"{args.duration:g} s, pause {pause:g} s after round(s) {sorted(after) or '-'}"
              f"{' (rounds interleaved with the other workloads)' if tagged else ''}",
              flush=True)
    cpu_head = ""
    if pids:
        db_head = f" {'db ms/op':>9}" if databases else ""
        cpu_head = f" {'srv ms/op':>9}{db_head} {'load ms/op':>10} {'idle %':>6}"
    tag_head = f"{'load':>4} " if tagged else ""
    units = sorted({w.unit for w in workloads})
    print(f"   {'round':>5} {tag_head}{'server':40} {'/'.join(units) + '/s':>12} "
          f"{'p50 ms':>9} {'p99 ms':>9} {'errors':>7}{cpu_head}", flush=True)
    first = True
    for n in range(1, args.rounds + 1):
        for i, (w, res) in enumerate(zip(workloads, results, strict=True), 1):
            for target in w.targets:
                if not first:
                    time.sleep(args.settle)
                first = False
                before = cpu_sample(pids, databases) if pids else None
                m = target.run()
                if before is not None and target.pid is not None:
                    m = with_cpu(m, Usage.between(before, cpu_sample(pids, databases),
                                                  target.pid, target.database))
                if target.after is not None:
                    target.after()
                res[target.label].append(m)
                cpu = ""
                if pids:
                    cpu = (f" {_cell(m.server_cpu_ms, 9)}"
                           f"{' ' + _cell(m.db_cpu_ms, 9) if databases else ''}"
                           f" {_cell(m.load_cpu_ms, 10)} {_cell(m.idle_pct, 6, 0)}")
                tag = f"{f'[{i}]':>4} " if tagged else ""
                print(f"   {n:>5} {tag}{target.label:40} {m.rate:>12.1f} {m.p50_ms:>9.1f} "
                      f"{m.p99_ms:>9.1f} {m.errors:>7}{cpu}{'  ' + m.note if m.note else ''}",
                      flush=True)
        if n in after and n < args.rounds and pause > 0:
            print(f"   (idle {pause:g} s from {time.strftime('%H:%M:%S')}: every cache entry "
                  "expires)", flush=True)
            _idle(pause, getattr(args, "turns", None))
            print(f"   (resumed at {time.strftime('%H:%M:%S')})", flush=True)
    return [(w.title, res) for w, res in zip(workloads, results, strict=True)]


def print_summary(title: str, results: dict[str, list[Measure]], ours: str, unit: str,
                  target_ratio: float | None = None) -> list[str]:
    """Ratios of ``ours`` to every other label: of the medians, and the worst round's.
    Returns the printed lines (the caller may collect them for a final summary)."""
    lines: list[str] = []
    mine = results.get(ours, [])
    if not mine:
        return lines
    med = statistics.median(m.rate for m in mine)
    first, last = mine[0].rate, mine[-1].rate
    lines.append(f"{title}: {ours} median {med:.1f} {unit}/s (round 1 {first:.1f}, last "
                 f"{last:.1f}, {_drift(mine)}), p99 median "
                 f"{statistics.median(m.p99_ms for m in mine):.1f} ms, errors "
                 f"{sum(m.errors for m in mine)}")
    for label, theirs in results.items():
        if label == ours or not theirs:
            continue
        ref = statistics.median(m.rate for m in theirs)
        worst = min((a.rate / b.rate for a, b in zip(mine, theirs, strict=False) if b.rate),
                    default=0.0)
        ratio = med / ref if ref else float("inf")
        verdict = ""
        if target_ratio is not None:
            verdict = "  met" if ratio >= target_ratio else f"  NOT met (target {target_ratio}x)"
        lines.append(f"   vs {label:40} median {ref:10.1f}  ratio of medians {ratio:5.2f}x  "
                     f"worst round {worst:5.2f}x{verdict}  ({_drift(theirs)})")
    lines += _cpu_summary(results, ours, unit)
    for line in lines:
        print(line, flush=True)
    return lines


def _drift(measures: list[Measure]) -> str:
    """The last round's rate over round 1's: the flat-over-time figure, printed for the
    references too, whose own drift over the same minutes is the machine's."""
    first, last = measures[0].rate, measures[-1].rate
    return f"last / round 1 {last / first:.2f}x" if first else "last / round 1 -"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _cpu_summary(results: dict[str, list[Measure]], ours: str, unit: str) -> list[str]:
    """Medians of the CPU figures per server, and the server CPU ratio ours / each other."""
    med = {label: {key: _median([getattr(m, key) for m in ms])
                   for key in ("server_cpu_ms", "db_cpu_ms", "load_cpu_ms", "idle_pct")}
           for label, ms in results.items()}
    if all(v["server_cpu_ms"] is None for v in med.values()):
        return []
    head = f"CPU ms per {unit.rstrip('s') or 'op'} (medians)"
    lines = [f"   {head:40} {'server':>9} {'db':>9} {'srv+db':>9} {'load gen':>9} "
             f"{'idle %':>6}"]
    mine = med.get(ours, {})

    def both(v: dict[str, float | None]) -> float | None:
        if v["server_cpu_ms"] is None:
            return None
        return v["server_cpu_ms"] + (v["db_cpu_ms"] or 0.0)

    my_server = mine.get("server_cpu_ms")
    for label, v in med.items():
        ratio = ""
        their_server = v["server_cpu_ms"]
        if label != ours and their_server and my_server is not None:
            ratio = f"  server {ours.split()[0]}/this {my_server / their_server:.2f}x"
            total, their_total = both(mine), both(v)
            if mine.get("db_cpu_ms") is not None and total is not None and their_total:
                ratio += f", srv+db {total / their_total:.2f}x"
        lines.append(f"   {label:40} {_cell(v['server_cpu_ms'], 9)} {_cell(v['db_cpu_ms'], 9)} "
                     f"{_cell(both(v), 9)} {_cell(v['load_cpu_ms'], 9)} "
                     f"{_cell(v['idle_pct'], 6, 0)}{ratio}")
    return lines
