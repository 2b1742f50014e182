"""Requests of one process that are under way at once go to PostgreSQL as one statement.

Why: on PostgreSQL every statement costs a round trip and a wake-up of a backend and of the
worker, and a durable write costs a WAL flush too (issue #9). Two kinds of request are
frequent enough under load to share statements: SMTP deliveries (:mod:`.batch`, group
commit) and RCPT lookups (:mod:`.recipients`). They share this queue, which knows nothing of
SQL; each gives it two coroutines: ``one`` for a request alone (the statement it always had)
and ``many`` for several (one statement over arrays, answers in order).

How: a request arriving while none is in the database goes at once, alone; those that arrive
meanwhile wait for it and then go together, at most ``max_batch`` per statement. Nothing
waits for company, so a lone request is never slower than before. Each caller gets its own
answer only once the statement that carries it has finished (for a write, committed).

When ``many`` fails, ``retry_alone(error)`` says what the batch's callers get: each request
tried alone (the statement was rolled back, and one request's fault, such as a missing
mailbox, must not refuse the others), or the error itself (the outcome is unknown, and
trying again could do the work twice).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

I = TypeVar("I")  # noqa: E741 - a request
R = TypeVar("R")  # its answer


def _never(_exc: BaseException) -> bool:
    return False


class Coalescer(Generic[I, R]):
    """The queue of one storage object's requests of one kind (module docstring)."""

    def __init__(self, one: Callable[[I], Awaitable[R]],
                 many: Callable[[list[I]], Awaitable[Sequence[R]]], *, max_batch: int,
                 retry_alone: Callable[[BaseException], bool] = _never) -> None:
        self._one = one
        self._many = many
        self._max = max_batch
        self._retry_alone = retry_alone
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        #: statements that carried more than one request (for tests and diagnosis)
        self.batches = 0

    async def submit(self, request: I) -> R:
        """``request``'s answer, once the statement carrying it has finished."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain())
        return await future

    async def close(self) -> None:
        """Let the requests queued so far finish."""
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _drain(self) -> None:
        while self._pending:
            batch = [p for p in self._pending[: self._max] if not p[1].done()]
            del self._pending[: self._max]
            if len(batch) > 1:
                await self._together(batch)
            elif batch:
                await self._alone(*batch[0])

    async def _alone(self, request: I, future: asyncio.Future[R]) -> None:
        try:
            answer = await self._one(request)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(answer)

    async def _together(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._many([request for request, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if self._retry_alone(exc):
                await asyncio.gather(*(self._alone(*pair) for pair in batch))
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            return
        self.batches += 1
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)
