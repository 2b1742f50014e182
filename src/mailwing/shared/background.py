"""Garbage collection in the background, on one node (one worker) of the cluster at a time.

Every ``server.gc_interval`` each worker tries to take (or renew) the ``gc`` lease in the
database (:meth:`Storage.take_lease`); the one that holds it collects, the others only note
who does. The holder renews the lease every round, so collection stays on one node while it
lives, and moves to another within one lease time (three intervals) after it dies. Whoever
holds it is logged when that changes, so start-up logs say which node collects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from mailwing.storage.errors import StorageError
from mailwing.storage.interface import Storage

__all__ = ["GarbageCollector"]

log = logging.getLogger("mailwing.gc")


class GarbageCollector:
    def __init__(self, storage: Storage, owner: str, *, interval: float,
                 min_age: float = 3600.0) -> None:
        self.storage = storage
        self.owner = owner
        self.interval = interval
        self.min_age = min_age
        self.holder: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.holder == self.owner:
            with contextlib.suppress(StorageError):
                await self.storage.release_lease("gc", self.owner)

    async def round(self) -> int | None:
        """One attempt: the number collected if this worker holds the lease, else None."""
        now = time.time()
        holder, until = await self.storage.take_lease("gc", self.owner, now,
                                                      now + 3 * self.interval)
        if holder != self.holder:
            log.info("garbage collection lease held by %s%s until %s", holder,
                     " (this worker)" if holder == self.owner else "",
                     time.strftime("%H:%M:%S", time.gmtime(until)))
            self.holder = holder
        if holder != self.owner:
            return None
        removed = await self.storage.collect_garbage(self.min_age)
        if removed:
            log.info("garbage collection removed %d unreferenced content(s)", removed)
        return removed

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except StorageError as exc:
                log.warning("garbage collection failed: %s", exc)
            await asyncio.sleep(self.interval * random.uniform(0.9, 1.1))
