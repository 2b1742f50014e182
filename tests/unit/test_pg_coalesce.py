"""The queue that lets concurrent PostgreSQL requests share a statement (``coalesce``).

No database: ``one`` and ``many`` are plain coroutines that record how they were called."""

from __future__ import annotations

import asyncio

import pytest

from mailwing.storage.postgres.coalesce import Coalescer


class _Calls:
    def __init__(self, fail_many: BaseException | None = None) -> None:
        self.log: list[tuple[str, object]] = []
        self.fail_many = fail_many
        self.gate = asyncio.Event()
        self.gate.set()

    async def one(self, request: int) -> int:
        self.log.append(("one", request))
        await self.gate.wait()
        if request < 0:
            raise ValueError(f"bad {request}")
        return request * 10

    async def many(self, requests: list[int]) -> list[int]:
        self.log.append(("many", list(requests)))
        await self.gate.wait()
        if self.fail_many is not None:
            raise self.fail_many
        return [r * 10 for r in requests]


async def test_a_lone_request_goes_alone_and_those_arriving_meanwhile_go_together() -> None:
    calls = _Calls()
    calls.gate.clear()
    queue: Coalescer[int, int] = Coalescer(calls.one, calls.many, max_batch=2)
    first = asyncio.ensure_future(queue.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert calls.log == [("one", 1)]  # nothing waits for company
    rest = [asyncio.ensure_future(queue.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    calls.gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40]
    # at most max_batch per statement; the last one left goes alone again
    assert calls.log == [("one", 1), ("many", [2, 3]), ("one", 4)]
    assert queue.batches == 1
    await queue.close()


@pytest.mark.parametrize("retry", [True, False])
async def test_a_failed_batch_is_retried_alone_or_fails_each_caller(retry: bool) -> None:
    error = RuntimeError("statement failed")
    calls = _Calls(fail_many=error)
    calls.gate.clear()
    queue: Coalescer[int, int] = Coalescer(calls.one, calls.many, max_batch=8,
                                           retry_alone=lambda exc: retry and exc is error)
    first = asyncio.ensure_future(queue.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(queue.submit(n)) for n in (2, -3)]
    await asyncio.sleep(0)
    calls.gate.set()
    assert await first == 10
    results = await asyncio.gather(*rest, return_exceptions=True)
    if retry:
        assert results[0] == 20 and isinstance(results[1], ValueError)  # each its own answer
        assert calls.log[1:] == [("many", [2, -3]), ("one", 2), ("one", -3)]
    else:
        assert results == [error, error]  # nothing tried twice
        assert calls.log[1:] == [("many", [2, -3])]
    assert queue.batches == 0


async def test_a_caller_that_gave_up_is_left_out_of_the_next_statement() -> None:
    calls = _Calls()
    calls.gate.clear()
    queue: Coalescer[int, int] = Coalescer(calls.one, calls.many, max_batch=8)
    first = asyncio.ensure_future(queue.submit(1))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(queue.submit(2))
    kept = [asyncio.ensure_future(queue.submit(n)) for n in (3, 4)]
    await asyncio.sleep(0)
    gone.cancel()
    calls.gate.set()
    assert await first == 10
    assert await asyncio.gather(*kept) == [30, 40]
    assert calls.log == [("one", 1), ("many", [3, 4])]
