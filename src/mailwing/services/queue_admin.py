"""The outbound queue as operators see it: list, show, retry now, delete, depth by state.

``mailwing queue`` and the admin API (and console) both call these functions, so what
"retry" or "depth" means is written once. The queue itself lives in the database
(:mod:`mailwing.storage.scripts_queue`), so this works while ``mailwing serve`` runs, on any
node: ``retry`` makes a message due now (the next worker poll sends it), ``delete`` drops it
without a bounce.
"""

from __future__ import annotations

import time
from collections import Counter

from mailwing.storage.interface import QueuedMessage, Storage

__all__ = ["QueueError", "delete", "depth", "get", "list_messages", "retry", "state_of"]


class QueueError(LookupError):
    """No such queued message (the message names the id)."""


def state_of(message: QueuedMessage, now: float | None = None) -> str:
    """``sending`` (leased by a worker now), ``deferred`` (tried, waiting for its next
    attempt) or ``pending`` (not tried yet, or due)."""
    now = time.time() if now is None else now
    if message.lease_owner and (message.lease_until or 0) > now:
        return "sending"
    if message.attempts > 0 and message.next_attempt > now:
        return "deferred"
    return "pending"


async def list_messages(store: Storage) -> list[QueuedMessage]:
    return await store.list_queued()


async def get(store: Storage, queue_id: str) -> QueuedMessage:
    message = await store.get_queued(queue_id)
    if message is None:
        raise QueueError(f"no queued message {queue_id}")
    return message


async def retry(store: Storage, queue_id: str) -> None:
    if not await store.retry_queued(queue_id, time.time()):
        raise QueueError(f"no queued message {queue_id}")


async def delete(store: Storage, queue_id: str) -> None:
    if not await store.delete_queued(queue_id):
        raise QueueError(f"no queued message {queue_id}")


async def depth(store: Storage) -> dict[str, int]:
    """Queued messages by :func:`state_of` (every state present, zero or not)."""
    now = time.time()
    counts = Counter(state_of(m, now) for m in await store.list_queued())
    return {state: counts.get(state, 0) for state in ("pending", "deferred", "sending")}
