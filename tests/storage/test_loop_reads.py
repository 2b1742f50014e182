"""SQLite: short reads run in the event loop's thread (:mod:`mailwing.storage.sqlite.loopreads`);
a kind of read found slow goes to the reader thread, and is tried in the loop's thread again
now and then. Which thread ran a read is recorded by the read itself; durations come from a
clock the test controls, so nothing here depends on timing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from mailwing.storage.sqlite import SqliteStorage
from mailwing.storage.sqlite.loopreads import RETRY, kind_of
from mailwing.storage.steps import Script, q

GUARD = 30


@pytest.fixture
def store(sqlite_store: SqliteStorage) -> SqliteStorage:
    return sqlite_store


def probe(seen: list[int]) -> Script[int]:
    """A read that records the thread it runs in."""
    seen.append(threading.get_ident())
    (row,) = yield q("SELECT 41 + 1")
    return int(row[0])


def other_probe(seen: list[int]) -> Script[int]:
    seen.append(threading.get_ident())
    (row,) = yield q("SELECT 7")
    return int(row[0])


class Clock:
    """Each reading is ``step`` seconds after the previous one."""

    def __init__(self) -> None:
        self.now = 0.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def clock(store: SqliteStorage) -> Iterator[Clock]:
    fake = Clock()
    store._runner._loop_reads._clock = fake
    yield fake


async def test_a_short_read_runs_in_the_calling_thread(store: SqliteStorage) -> None:
    seen: list[int] = []
    reader_before = store._runner._reader.requests
    assert await store._run(probe(seen), write=False) == 42
    assert seen == [threading.get_ident()]
    assert store._runner._reader.requests == reader_before
    assert store._runner._loop_reads.requests == 1


async def test_a_slow_kind_goes_to_the_reader_thread_and_is_retried(
        store: SqliteStorage, clock: Clock) -> None:
    here = threading.get_ident()
    seen: list[int] = []
    clock.step = 0.01  # every read run here takes 10 ms: over the budget
    assert await asyncio.wait_for(store._run(probe(seen), write=False), GUARD) == 42
    assert seen == [here]
    for _ in range(RETRY - 1):
        assert await asyncio.wait_for(store._run(probe(seen), write=False), GUARD) == 42
    assert here not in seen[1:]  # all of them on the reader thread
    # another kind is not affected
    other: list[int] = []
    assert await store._run(other_probe(other), write=False) == 7
    assert other == [here]
    # the RETRY-th call is tried here again; fast now, the kind stays here
    clock.step = 0.0
    await store._run(probe(seen), write=False)
    await store._run(probe(seen), write=False)
    assert seen[-2:] == [here, here]


async def test_a_retry_still_slow_keeps_the_kind_on_the_reader(
        store: SqliteStorage, clock: Clock) -> None:
    here = threading.get_ident()
    seen: list[int] = []
    clock.step = 0.01
    for _ in range(RETRY + 2):
        await asyncio.wait_for(store._run(probe(seen), write=False), GUARD)
    assert [i for i, t in enumerate(seen) if t == here] == [0, RETRY]


async def test_an_error_of_a_read_run_here_reaches_the_caller(store: SqliteStorage) -> None:
    def broken() -> Script[None]:
        yield q("SELECT * FROM no_such_table")

    with pytest.raises(Exception, match="no_such_table"):
        await store._run(broken(), write=False)
    assert await store.get_domain("x.test") is None  # the connection is still usable


async def test_a_read_here_sees_every_write_whose_caller_heard_back(
        store: SqliteStorage, clock: Clock) -> None:
    # the controlled clock (step 0) keeps every read here: on a busy machine a real clock
    # may find one over the budget and send the next 63 to the reader thread
    for n in range(20):
        await store.add_domain(f"d{n}.test")
        assert await store.get_domain(f"d{n}.test") is not None
    assert store._runner._loop_reads.requests >= 20


def test_kind_of_names_the_function() -> None:
    script = probe([])
    assert kind_of(script) == "probe"
    script.close()
