"""IDLE (RFC 2177): push EXISTS/EXPUNGE/FETCH while the client waits, until ``DONE``.

The handler answers ``+ idling``, then waits at the same time for the client's next line and
for :meth:`Storage.wait_for_change` on the selected mailbox (woken by any session, worker
process, ``mailwing deliver`` or node; storage re-checks periodically so a lost wake-up only
delays). Every change is caught up with :func:`~mailwing.server.imap.base.sync_view` and
written at once; EXPUNGE is allowed during IDLE. The connection's idle timeout still applies
(clients re-issue IDLE well within RFC 3501's 30 minutes); a line other than ``DONE`` ends
IDLE with BAD.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mailwing.proto.imap import commands as c
from mailwing.proto.imap import responses, texts
from mailwing.server.imap.base import Done, Handler, SessionState, sync_view
from mailwing.storage.errors import StorageError

__all__ = ["HANDLERS", "WAIT_SLICE"]

WAIT_SLICE = 30.0  # seconds per wait_for_change call (then it is simply called again)


async def _cancel(task: asyncio.Future[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def idle(s: SessionState, cmd: c.Idle) -> Done:
    assert s.read_line is not None
    s.send(responses.continuation(texts.CONTINUE_IDLE))
    await sync_view(s, allow_expunge=True)
    await s.flush()
    line_task: asyncio.Future[bytes] = asyncio.ensure_future(s.read_line())
    waiter: asyncio.Future[bool] | None = None
    try:
        while not line_task.done():
            view = s.view
            if view is not None and waiter is None:
                waiter = asyncio.ensure_future(
                    s.ctx.storage.wait_for_change(view.mailbox_id, view.modseq, WAIT_SLICE))
            pending: set[asyncio.Future[Any]] = (
                {line_task} if waiter is None else {line_task, waiter})
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if waiter is not None and waiter.done():
                try:
                    changed = waiter.result()
                except StorageError as exc:
                    s.conn.log("wait for change failed", error=str(exc))
                    changed = False
                    await asyncio.wait({line_task}, timeout=1.0)
                waiter = None
                if changed:
                    await sync_view(s, allow_expunge=True)
                    await s.flush()
                    if s.bye is not None:  # the mailbox was deleted: the session ends
                        return Done("OK", "", sent=True)
        line = line_task.result()
    finally:
        await _cancel(waiter)
        await _cancel(line_task)
    if line.strip().upper() != b"DONE":
        return Done("BAD", texts.IDLE_DONE_EXPECTED)
    return Done("OK", texts.COMPLETED.format("IDLE"))


HANDLERS: dict[type[c.Command], Handler] = {c.Idle: idle}
