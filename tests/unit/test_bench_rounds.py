"""benchmarks/rounds.py: workloads' rounds interleave, and the turns lock is let go in pauses.

Why: the issue's figures need hour-long pauses between rounds; with one pause per client
count a full run took hours per row. Interleaved, one pause serves every row, and
benchmarks started together (``--turns``) measure in turns while their pauses overlap.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import rounds  # noqa: E402
from rounds import Measure, Target, Workload, run_workloads, take_turn  # noqa: E402


def _args(turns: str | None, pause_after: str = "1") -> argparse.Namespace:
    return argparse.Namespace(rounds=3, pause=30.0, pause_after=pause_after, settle=0.0,
                              duration=1.0, turns=turns)


def _free(path: str) -> bool:
    """Whether another holder could take the lock now (a second descriptor, non-blocking)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.fixture(autouse=True)
def _no_lock_left() -> object:
    yield
    if rounds._turn is not None:
        os.close(rounds._turn)
        rounds._turn = None


def test_round_n_of_every_workload_runs_before_round_n_plus_1_and_one_pause_serves_all(
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    sleeps: list[float] = []
    monkeypatch.setattr(rounds.time, "sleep", sleeps.append)

    def target(name: str) -> Target:
        def run() -> Measure:
            order.append(name)
            return Measure(rate=1.0, p50_ms=1.0, p99_ms=1.0)
        return Target(name, run)

    found = run_workloads([Workload("ten", [target("a10"), target("b10")], "cmds"),
                           Workload("fifty", [target("a50"), target("b50")], "cmds")],
                          _args(None))
    assert order == ["a10", "b10", "a50", "b50"] * 3
    assert [s for s in sleeps if s] == [30.0]  # the one pause, after round 1 of both
    assert [title for title, _ in found] == ["ten", "fifty"]
    assert {label: len(ms) for label, ms in found[1][1].items()} == {"a50": 3, "b50": 3}


def test_turns_lock_is_held_while_measuring_and_free_during_the_pause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "turns.lock")
    take_turn(path)
    free_in_rounds: list[bool] = []
    free_in_pause: list[bool] = []

    def sleep(seconds: float) -> None:
        if seconds:
            free_in_pause.append(_free(path))

    monkeypatch.setattr(rounds.time, "sleep", sleep)

    def run() -> Measure:
        free_in_rounds.append(_free(path))
        return Measure(rate=1.0, p50_ms=1.0, p99_ms=1.0)

    run_workloads([Workload("w", [Target("x", run)], "msgs")], _args(path, "1,2"))
    assert free_in_rounds == [False, False, False]  # taken back after each pause
    assert free_in_pause == [True, True]
    assert not _free(path)  # still held after the rounds (the caller's teardown follows)


def test_without_turns_nothing_is_locked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rounds.time, "sleep", lambda s: None)
    take_turn(None)
    run_workloads([Workload("w", [Target("x", lambda: Measure(1.0, 1.0, 1.0))], "msgs")],
                  _args(None))
    assert rounds._turn is None


def test_summary_gives_last_over_round_1_for_ours_and_each_reference() -> None:
    """The flat-over-time figure, and beside it the same figure of a reference that ran in
    the same minutes (the machine's own drift)."""
    def rates(*values: float) -> list[Measure]:
        return [Measure(rate=v, p50_ms=1.0, p99_ms=1.0) for v in values]

    lines = rounds.print_summary("t", {"ours": rates(100.0, 95.0, 80.0),
                                       "ref": rates(50.0, 50.0, 49.0)}, "ours", "msgs")
    assert "last / round 1 0.80x" in lines[0]
    assert "last / round 1 0.98x" in lines[1]
    assert "ratio of medians  1.90x" in lines[1]


def test_fresh_control_empties_a_real_mailwing_database(tmp_path: Path) -> None:
    """smtp_bench --fresh-control: after a round the control's messages are gone, and the
    database still takes deliveries (its B-trees start again from nothing)."""
    import asyncio
    import contextlib
    import sqlite3

    import smtp_bench
    from smtp_load import make_body

    from mailwing.services.delivery import deliver_local
    from mailwing.storage import open_storage

    database = tmp_path / "mailwing.db"
    user = "user0@bench.test"

    async def deliver(count: int) -> None:
        store = await open_storage(f"sqlite:///{database}", data_dir=tmp_path / "data")
        try:
            await store.upgrade()
            if await store.get_user(user) is None:
                await store.add_user(user, "x", create_domain=True)
            for seed in range(count):
                await deliver_local(store, user, make_body(4096, seed)[0],
                                    hostname="mx.bench.test")
        finally:
            await store.close()

    def count(table: str) -> int:
        with contextlib.closing(sqlite3.connect(database)) as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    asyncio.run(deliver(3))
    assert (count("mail"), count("contents"), count("inline_contents")) == (3, 3, 3)
    smtp_bench.empty_database(database)()
    assert (count("mail"), count("contents"), count("inline_contents")) == (0, 0, 0)
    asyncio.run(deliver(2))
    assert count("mail") == 2
