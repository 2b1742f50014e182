"""What a failed group-commit statement does (:mod:`mailwing.storage.postgres.batch`).

A batch that the server rolled back (a missing mailbox, a deadlock) is retried one delivery
at a time, so that each caller gets its own answer. A batch whose connection broke with the
statement sent may have committed: retrying it could deliver every message twice, so each
caller gets the error instead (SMTP then answers 451 and the sender retries). No database:
the statement runner is a stand-in that fails the first (batch) statement as told and
records the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from mailwing.model import ContentInfo
from mailwing.storage.errors import TemporaryStorageError
from mailwing.storage.interface import Delivery
from mailwing.storage.postgres.batch import BatchIncomplete, DeliveryBatcher, maybe_committed
from mailwing.storage.postgres.errors import map_pg_error


def _content(i: int) -> ContentInfo:
    return ContentInfo(sha256=f"{i:064x}", size=10, crlf_size=10, crlf_clean=True)


def _mapped(exc: BaseException) -> BaseException:
    """As the backend's ``_run`` raises it: mapped, with the driver's error as its cause."""
    mapped = map_pg_error(exc)
    mapped.__cause__ = exc
    return mapped


class _Runner:
    def __init__(self, first_error: BaseException) -> None:
        self.first_error = first_error
        self.calls = 0

    async def __call__(self, script: Any) -> Any:
        script.close()
        self.calls += 1
        if self.calls == 1:
            raise self.first_error
        return ["alone"]


async def _deliver_three(runner: _Runner) -> list[Any]:
    batcher = DeliveryBatcher(runner)
    return await asyncio.gather(
        *(batcher.deliver(_content(i), [Delivery(1)], b"x") for i in range(3)),
        return_exceptions=True)


@pytest.mark.parametrize("error", [
    BatchIncomplete("a mailbox is gone"),
    _mapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")),
])
async def test_a_batch_rolled_back_is_retried_one_by_one(error: BaseException) -> None:
    runner = _Runner(error)
    results = await _deliver_three(runner)
    assert runner.calls == 4  # the batch, then each alone
    assert results == [["alone"]] * 3


@pytest.mark.parametrize("cause", [
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    asyncpg.InterfaceError("connection is closed"),
    ConnectionResetError("reset by peer"),
    TimeoutError(),
])
async def test_a_batch_whose_outcome_is_unknown_is_not_delivered_again(
        cause: BaseException) -> None:
    error = _mapped(cause)
    assert isinstance(error, TemporaryStorageError) and maybe_committed(error)
    runner = _Runner(error)
    results = await _deliver_three(runner)
    assert runner.calls == 1  # no second try that could duplicate
    assert all(r is error for r in results)
