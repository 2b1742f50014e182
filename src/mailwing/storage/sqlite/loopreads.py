"""Reads run on the event loop's own thread, when they are short.

Why (issue #9): a read handed to the reader thread (:mod:`.runner`) pays two thread hops: a
queue put, the reader thread waking and taking the GIL from the event loop, which is busy with
the other sessions and keeps it up to the switch interval (5 ms), then
``call_soon_threadsafe`` and a wake-up of the loop. Most reads are a catch-up, a flag lookup
or a user lookup: tens of microseconds of SQLite work behind about a millisecond of hops.
Measured on the IMAP benchmarks (``benchmarks/imap_bench.py --servers mailwing``, 10 clients,
alternating runs): 10-13 % less server CPU per command and 6-12 % more commands per second
when such reads run in the calling thread.

A read run here blocks the event loop for as long as SQLite takes, though, which the reader
thread does not (``sqlite3`` releases the GIL while a statement steps). So each kind of read
(the script's function) is timed here, and a kind that took longer than :data:`BUDGET` goes
to the reader thread from then on; every :data:`RETRY`-th call of such a kind is tried here
again, so that a kind slow once (a large mailbox, a cold cache) is not sent away for good.
Nothing else changes: the read runs on a read-only connection of its own, in its own read
transaction (so it sees every write whose caller has heard back), through the same executor
as the reader thread.

``sqlite3`` connections belong to the thread that opened them, so reads here are only those
made from the thread that made the first one (the server's event loop); any other thread's
reads go to the reader thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailwing.storage.blobs import BlobStore
from mailwing.storage.sqlite.executor import SqliteExecutor, Work
from mailwing.storage.steps import Script

__all__ = ["BUDGET", "RETRY", "LoopReads"]

#: Seconds a kind of read may take here before its next calls go to the reader thread.
BUDGET = 0.002
#: A kind sent to the reader thread is tried here again on every RETRY-th call.
RETRY = 64


def kind_of(script: Script[Any]) -> str:
    """The name of the function that made ``script`` (a generator)."""
    code = getattr(script, "gi_code", None)
    return code.co_qualname if code is not None else type(script).__qualname__


class LoopReads:
    """Runs short reads synchronously in the one thread that uses it first (see above)."""

    def __init__(self, path: Path, blobs: BlobStore, *, busy_timeout: float,
                 budget: float = BUDGET, clock: Callable[[], float] = time.perf_counter
                 ) -> None:
        self._path = path
        self._blobs = blobs
        self._busy_timeout = busy_timeout
        self._budget = budget
        self._clock = clock
        self._executor: SqliteExecutor | None = None
        self._thread: int | None = None
        #: kinds over budget -> calls sent to the reader thread since
        self._slow: dict[str, int] = {}

    def take(self, work: Work) -> bool:
        """Run ``work`` (a read) here and return True; or return False at once, untouched,
        when it should go to the reader thread."""
        me = threading.get_ident()
        if self._thread is None:
            self._thread = me
        elif me != self._thread:
            return False
        kind = kind_of(work.script)
        skipped = self._slow.get(kind)
        if skipped is not None:
            if skipped + 1 < RETRY:
                self._slow[kind] = skipped + 1
                return False
            self._slow[kind] = 0
        if self._executor is None:
            self._executor = SqliteExecutor(self._path, self._blobs,
                                            busy_timeout=self._busy_timeout, read_only=True)
        start = self._clock()
        self._executor.run_batch([work])
        if self._clock() - start > self._budget:
            self._slow[kind] = self._slow.get(kind, 0)
        else:
            self._slow.pop(kind, None)
        return True

    @property
    def transactions(self) -> int:
        return self._executor.transactions if self._executor is not None else 0

    @property
    def requests(self) -> int:
        """Reads run here so far."""
        return self._executor.requests if self._executor is not None else 0

    def close(self) -> None:
        """Close the connection; only from its own thread (elsewhere it is left to the
        garbage collector, as ``sqlite3`` requires, and the counts with it)."""
        if self._executor is None:
            return
        if threading.get_ident() == self._thread:
            self._executor.close()
        else:
            self._executor = None
